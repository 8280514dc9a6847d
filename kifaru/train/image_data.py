"""Training data of an image run: every labelled photo read once (and its animals found) on the
engine, its crops (or the whole photo) stored as the family's fitted pixels, one ``.npy`` file per
photo in the run's crop folder (in ``cache_dir``: memory stays flat however many photos there are,
and the data loader's processes read the crops they need), then served each epoch augmented as
zamba augments camera-trap photos, and normalised as prediction normalises them.

A photo that cannot be read is a failure record; one in which the detector finds nothing at
``detections_threshold`` is not trained on (prediction would not classify it either) and is
reported with that reason: neither is ever trained on as something else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from kifaru.images.preprocess import ImageFamily
from kifaru.runs.records import STAGE_DETECT, STATUS_FAILED, Record

NOTHING_FOUND = "the detector found no animal at detections_threshold {threshold:g}: not trained on (prediction would not classify it)"


@dataclass(frozen=True)
class StoredCrop:
    """Crop ``index`` of the (crops, size, size, 3) uint8 array saved in ``path``."""

    path: str
    index: int

    def load(self) -> np.ndarray:
        return np.array(np.load(self.path, mmap_mode="r")[self.index])


@dataclass
class PhotoCrops:
    """Every crop's stored pixels (fitted, uint8 (size, size, 3)), and the photo each is from."""

    pixels: list[StoredCrop]
    photo: list[int]  # index into the labelled photos
    conf: list[Optional[float]]  # the detection's confidence (None: the whole photo)
    failures: list[Record]
    detection: list[Optional[int]] = field(default_factory=list)  # the box's number in its photo (None: whole)

    def of(self, photos: Sequence[int]) -> list[int]:
        """The crops of these photos, in order."""
        wanted = set(photos)
        return [i for i, p in enumerate(self.photo) if p in wanted]


def load_crops(
    filepaths: Sequence[str],
    settings: Any,
    num_workers: int,
    store: Path,
    detector: Any = None,
    progress: Optional[Callable[[Record, int, int], None]] = None,
) -> PhotoCrops:
    """Each photo read once, in worker processes (kifaru.runs.image_tasks.LoadPhoto with
    ``as_pixels``), its crops saved in the folder ``store``; ``detector``: a loaded one to use in
    this process (tests)."""
    from kifaru.runs.backends import backend_for
    from kifaru.runs.engine import run_items
    from kifaru.runs.image_tasks import LoadPhoto
    from kifaru.runs.inputs import items_from

    task = LoadPhoto(settings, detector=detector)
    crops = PhotoCrops([], [], [], [])
    index = {name: i for i, name in enumerate(filepaths)}
    loaded_pixels: dict[int, tuple[str, list]] = {}
    Path(store).mkdir(parents=True, exist_ok=True)

    def pipeline(todo: Sequence[Any], finish: Callable[[Record], None]) -> None:
        with backend_for(task, 0 if detector is not None else num_workers) as backend:
            for loaded in backend.map(todo):
                record = loaded.record
                if loaded.inputs is None and not record.failed:
                    record.status, record.stage = STATUS_FAILED, STAGE_DETECT
                    record.reason = NOTHING_FOUND.format(threshold=settings.detections_threshold)
                elif loaded.inputs is not None:
                    photo = index[record.item]
                    path = str(Path(store) / f"{photo:07d}.npy")
                    np.save(path, loaded.inputs)
                    loaded_pixels[photo] = (path, record.outputs["crops"])
                finish(record)

    items = items_from(filepaths, media="photo")
    result = run_items(items, pipeline, progress=progress)
    for photo in sorted(loaded_pixels):
        path, described = loaded_pixels[photo]
        for number, crop in enumerate(described):
            crops.pixels.append(StoredCrop(path, number))
            crops.photo.append(photo)
            crops.conf.append(crop.get("conf"))
            crops.detection.append(crop.get("detection"))
    crops.failures = result.failed
    return crops


def labelled_boxes(photos: Any) -> dict[str, list]:
    """The labels' boxes as the photo task takes them (relative x, y, width, height), by photo.
    Pixel boxes are in the photo as stored: a photo that EXIF turns upright is refused, its box
    would be cut from the wrong place."""
    from PIL import Image

    from kifaru.exceptions import ConfigError

    given: dict[str, list] = {}
    for filepath, boxes in zip(photos.filepaths, photos.boxes or []):
        size = None
        if any(v > 1 for box, _ in boxes for v in box):
            try:
                with Image.open(filepath) as image:
                    size = image.size
                    if image.getexif().get(0x0112, 1) not in (None, 1):
                        raise ConfigError(f"labels {photos.source}: {filepath} has boxes in pixels but EXIF turns it upright; give its boxes relative (0-1) to the upright photo")
            except OSError:
                given[filepath] = []  # unreadable: the photo task records why
                continue
        relative_boxes = []
        for box, _ in boxes:  # as zamba's absolute_bbox: a box whose four values are at most 1 is relative
            width, height = (1, 1) if all(v <= 1 for v in box) else size
            x1, y1, x2, y2 = box
            relative_boxes.append(([x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height], 1.0, "1"))
        given[filepath] = relative_boxes
    return given


class _ThenNamed:
    """zamba's photo pipeline, then kifaru's named augmentations (kifaru.train.augment, which
    work on clips: a photo is a clip of one frame); pickles for the data loader's processes."""

    def __init__(self, pipeline: Any, named: Callable[[np.ndarray], np.ndarray]) -> None:
        self.pipeline, self.named = pipeline, named

    def __call__(self, pixels: Any) -> Any:
        import torch

        frame = self.pipeline(pixels).permute(1, 2, 0).numpy()[None]
        return torch.from_numpy(self.named(frame)[0]).permute(2, 0, 1)


def photo_augmenter(image_size: int, extra: bool, named: Sequence[Any] = ()) -> Callable[[Any], Any]:
    """zamba's training augmentations for camera-trap photos, on uint8 (3, H, W) tensors: a
    perspective shift, a horizontal flip, a small rotation; ``extra`` adds a resized crop and
    rare grayscale, equalise, autocontrast and blur (zamba's ``extra_train_augmentations``);
    ``named``: kifaru's augmentations (``augmentations``) after them."""
    from torchvision.transforms import v2

    from kifaru.train.augment import clip_augmenter

    steps: list[Any] = []
    if extra:
        steps.append(v2.RandomResizedCrop(size=(image_size, image_size), scale=(0.75, 1.0), antialias=True))
    steps += [
        v2.RandomPerspective(distortion_scale=0.2, p=0.5),
        v2.RandomHorizontalFlip(p=0.3),
        v2.RandomApply([v2.RandomRotation((-22, 22))], p=0.2),
    ]
    if extra:
        steps += [
            v2.RandomGrayscale(p=0.05),
            v2.RandomEqualize(p=0.05),
            v2.RandomAutocontrast(p=0.05),
            v2.RandomAdjustSharpness(sharpness_factor=0.9, p=0.05),
        ]
    pipeline = v2.Compose(steps)
    return _ThenNamed(pipeline, clip_augmenter(named)) if named else pipeline


class CropDataset:
    """A map-style dataset: item i is (float32 network input (3, S, S), float32 target)."""

    def __init__(self, pixels: Sequence[StoredCrop], targets: np.ndarray, family: ImageFamily, augment: Optional[Callable[[Any], Any]] = None, erase: bool = False) -> None:
        if len(pixels) != len(targets):
            raise ValueError(f"{len(pixels)} crops but {len(targets)} targets")
        self.pixels = list(pixels)
        self.targets = np.asarray(targets, dtype=np.float32)
        self.family = family
        self.augment = augment
        self.erase = erase

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        import torch

        pixels = self.pixels[index].load()
        if self.augment is not None:
            pixels = self.augment(torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))).numpy().transpose(1, 2, 0)
        network_input = torch.from_numpy(self.family.normalise(pixels))
        if self.erase:  # zamba's last extra augmentation, on the normalised input
            from torchvision.transforms import v2

            network_input = v2.RandomErasing(p=0.25, scale=(0.02, 0.33), ratio=(0.3, 3.3))(network_input)
        return network_input, torch.from_numpy(self.targets[index])
