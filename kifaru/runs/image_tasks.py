"""What happens to one photo before the classifier: read it upright, find the animals (the
detector chosen by name, or boxes given in a MegaDetector file), and turn each crop (or the whole
photo) into the classifier's input. Like every task (kifaru.runs.tasks) it never raises for a bad
file, and it is picklable: a worker process loads its own detector in ``start()``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from kifaru.images.crops import pixel_box, xyxy_to_xywh
from kifaru.images.preprocess import FAMILIES
from kifaru.runs.inputs import Item
from kifaru.runs.journal import file_fingerprint
from kifaru.runs.records import MEDIA_IMAGE, STAGE_WORKER, Record, failure_of

# A given box: (relative [x, y, width, height], confidence, MegaDetector category).
GivenBox = tuple[list[float], float, str]


@dataclass
class LoadedPhoto:
    """A photo's classifier inputs (one per crop, or the whole photo; None for a failure) and its
    record so far: ``outputs["crops"]`` says which box each input is."""

    index: int
    record: Record
    inputs: Optional[np.ndarray] = None


@dataclass
class PhotoSettings:
    crop_images: bool
    detections_threshold: float
    family: str
    image_size: int
    detector: Optional[str] = None  # the registry's name; None when boxes are given or nothing is cropped
    detector_weights: Optional[Path] = None
    device: str = "cpu"
    given_boxes: Optional[dict[str, list[GivenBox]]] = None  # by item name
    kept_threshold: float = 0.05
    # Training: each input as fitted uint8 pixels (size, size, 3), to be augmented, not yet normalised.
    as_pixels: bool = False


@dataclass
class LoadPhoto:
    settings: PhotoSettings
    detector: Any = field(default=None, repr=False)  # loaded by start(), in the process that runs it

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self.settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.settings = state["settings"]
        self.detector = None

    def start(self) -> None:
        settings = self.settings
        if self.detector is None and settings.crop_images and settings.detector is not None and settings.given_boxes is None:
            from kifaru.detection.registry import DETECTORS

            self.detector = DETECTORS[settings.detector].load(settings.detector_weights, settings.device)

    def close(self) -> None:
        self.detector = None

    def crashed(self, item: Item, reason: str) -> LoadedPhoto:
        return LoadedPhoto(item.index, Record.failure(item.name, STAGE_WORKER, reason, media=MEDIA_IMAGE, fingerprint=file_fingerprint(item.path)))

    def __call__(self, item: Item) -> LoadedPhoto:
        from kifaru.images.photo import read_photo

        fingerprint = file_fingerprint(item.path)
        try:
            photo = read_photo(item.path)
            found = self._boxes(item, photo.pixels)
        except Exception as error:  # one photo must never stop a run: record it, go on
            stage, reason = failure_of(error)
            return LoadedPhoto(item.index, Record.failure(item.name, stage, reason, media=MEDIA_IMAGE, fingerprint=fingerprint))
        settings = self.settings
        family = FAMILIES[settings.family]
        record = Record(item.name, media=MEDIA_IMAGE, fingerprint=fingerprint, notes=list(photo.notes))
        record.outputs["image_size"] = [photo.width, photo.height]
        record.outputs["taken"] = photo.taken.isoformat() if photo.taken is not None else None
        crops, inputs = [], []
        if found is not None:
            kept = [(xywh, score, category) for xywh, score, category in found if score >= settings.kept_threshold]
            record.frames = [
                {
                    "frame_number": 0,
                    "time": 0.0,
                    "detections": [[round(x, 6), round(y, 6), round(x + w, 6), round(y + h, 6), round(score, 6)] for (x, y, w, h), score, _ in kept],
                    "categories": [category for _, _, category in kept],
                }
            ]
            for number, (xywh, score, category) in enumerate(kept):
                if score < settings.detections_threshold:
                    continue
                box = pixel_box(xywh, photo.width, photo.height)
                if box[2] <= box[0] or box[3] <= box[1]:
                    record.notes.append(f"detection {number} is less than a pixel wide or high: not classified")
                    continue
                crops.append({"detection": number, "box": list(box), "conf": round(score, 6), "category": category})
                inputs.append(self._input(family, photo.crop(box)))
        else:  # crop_images false: the whole photo
            crops.append({"detection": None, "box": [0, 0, photo.width, photo.height], "conf": None, "category": None})
            inputs.append(self._input(family, photo.image()))
        record.outputs["crops"] = crops
        record.frames_used = [0] if inputs else []
        return LoadedPhoto(item.index, record, np.stack(inputs) if inputs else None)

    def _input(self, family: Any, image: Any) -> np.ndarray:
        if self.settings.as_pixels:
            return np.asarray(family.fit(image, self.settings.image_size), dtype=np.uint8)
        return family.to_input(image, self.settings.image_size)

    def _boxes(self, item: Item, pixels: np.ndarray) -> Optional[list[GivenBox]]:
        """The photo's detections (relative x, y, width, height), or None to classify it whole."""
        settings = self.settings
        if not settings.crop_images:
            return None
        if settings.given_boxes is not None:
            return list(settings.given_boxes.get(item.name, []))
        return [(xyxy_to_xywh(box), score, category) for box, score, category in self.detector.find(pixels, settings.kept_threshold)]
