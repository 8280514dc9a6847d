"""What happens to one item: read a clip's frames for a model, or run the detector over a file.

Tasks are pure of I/O beyond reading their item, never raise for a bad file (every exception
becomes a failure record), and are picklable: a backend runs them here or in worker processes,
where ``start()`` loads the detector once per process from weights resolved beforehand (so that no
worker downloads anything, and a worker on the CPU never imports PyTorch to look for a GPU).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from kifaru.config.video import VideoLoaderConfig
from kifaru.video.screen import Screen
from kifaru.runs.inputs import Item
from kifaru.runs.journal import file_fingerprint
from kifaru.runs.records import (
    MEDIA_IMAGE,
    MEDIA_VIDEO,
    STAGE_FRAMES,
    STAGE_WORKER,
    STATUS_FAILED,
    Record,
    failure_of,
    frame_entries,
    without_path,
)


def media_of(path: Path) -> str:
    from kifaru.video.media import is_image

    return MEDIA_IMAGE if is_image(path) else MEDIA_VIDEO


class _LoaderTask:
    """A task holding one FrameLoader (and so one detector) for every item it is given."""

    def __init__(
        self,
        config: VideoLoaderConfig,
        detector_weights: Optional[Path] = None,
        detector_device: Optional[str] = None,
        detector: Any = None,
        screen: Optional[Screen] = None,
    ) -> None:
        self.config = config
        self.detector_weights = detector_weights
        self.detector_device = detector_device
        self.detector = detector  # a stand-in or an already loaded detector (in-process only)
        self.screen = screen  # fast mode's (kifaru.video.screen)
        self.loader: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # What a worker process needs: the config as JSON, the weights' path; never a live detector.
        return {
            "config": self.config.model_dump(mode="json"),
            "detector_weights": str(self.detector_weights) if self.detector_weights else None,
            "detector_device": self.detector_device,
            "screen": self.screen,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        weights = state["detector_weights"]
        self.__init__(
            VideoLoaderConfig.model_validate(state["config"]), Path(weights) if weights else None, state["detector_device"],
            screen=state["screen"],
        )  # fmt: skip

    def start(self) -> None:
        from kifaru.video.loader import FrameLoader

        detector = self.detector
        settings = self.config.megadetector_lite_config
        if detector is None and settings is not None and self.detector_weights is not None:
            from kifaru.detection.megadetector_lite import load_megadetector_lite

            detector = load_megadetector_lite(self.detector_weights, device=self.detector_device or settings.device)
        self.loader = FrameLoader(self.config, detector=detector, screen=self.screen)

    def close(self) -> None:
        if self.loader is not None:
            self.loader.close()
            self.loader = None

    def crashed(self, item: Item, reason: str) -> Record:
        return Record.failure(item.name, STAGE_WORKER, reason, media=media_of(item.path), fingerprint=file_fingerprint(item.path))

    def _failed(self, item: Item, error: Exception, fingerprint: Optional[list]) -> Record:
        stage, reason = failure_of(error)
        return Record.failure(item.name, stage, reason, media=media_of(item.path), fingerprint=fingerprint)


@dataclass
class Loaded:
    """A clip's frames for the model (None for a failure, or a clip fast mode's screen called
    empty: its record's outputs say ``decided_by``) and its record so far."""

    index: int
    record: Record
    frames: Optional[np.ndarray] = None


class LoadFrames(_LoaderTask):
    """The frames a model sees (``FrameLoader.load``), with the detector's findings on every frame
    it scored and the notes the loader made."""

    def crashed(self, item: Item, reason: str) -> Loaded:
        return Loaded(item.index, super().crashed(item, reason))

    def __call__(self, item: Item) -> Loaded:
        from kifaru.video.loader import DECIDED_BY_DETECTOR, NO_FRAME

        fingerprint = file_fingerprint(item.path)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                loaded = self.loader.load(item.path)
        except Exception as error:  # one file must never stop a weekend's run: record it, go on
            return Loaded(item.index, self._failed(item, error, fingerprint))
        notes = [without_path(str(w.message), item.path) for w in caught if issubclass(w.category, UserWarning)]
        record = Record(
            item.name,
            media=media_of(item.path),
            fingerprint=fingerprint,
            frame_rate=loaded.frame_rate,
            frames=frame_entries(loaded.detections or []),
            notes=notes,
        )
        if loaded.decided_by is not None:
            record.outputs["decided_by"] = loaded.decided_by
        if loaded.decided_by == DECIDED_BY_DETECTOR:
            return Loaded(item.index, record)  # the screen found no animal: nothing for the classifier
        if NO_FRAME in loaded.source_indices or len(loaded.frames) == 0:
            # Never predict from frames that were not read (zamba would use zeros).
            reason = next((n for n in reversed(notes) if "no frame was selected" in n), "no frame was selected")
            record.status, record.stage, record.reason = STATUS_FAILED, STAGE_FRAMES, reason
            return Loaded(item.index, record)
        record.frames_used = [int(i) for i in loaded.source_indices]
        return Loaded(item.index, record, loaded.frames)


class DetectFile(_LoaderTask):
    """The detector's findings on every frame the config samples (``FrameLoader.detect``)."""

    def __call__(self, item: Item) -> Record:
        fingerprint = file_fingerprint(item.path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # partial decodes are in found.warnings
                found = self.loader.detect(item.path)
        except Exception as error:  # one file must never stop a weekend's run: record it, go on
            return self._failed(item, error, fingerprint)
        return Record(
            item.name,
            media=MEDIA_IMAGE if found.is_image else MEDIA_VIDEO,
            fingerprint=fingerprint,
            frame_rate=None if found.is_image else found.frame_rate,
            frames=frame_entries(list(zip(found.frame_numbers, found.times, found.detections))),
            notes=[without_path(note, item.path) for note in found.warnings],
        )
