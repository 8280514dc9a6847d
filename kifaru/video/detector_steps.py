"""The detector's part of :class:`kifaru.video.loader.FrameLoader`: frames fitted to
MegadetectorLite's input are scored in batches on a worker thread while decoding goes on; every
scored frame's boxes (down to KEPT_BOX_THRESHOLD, relative to the whole frame) are kept for the
outputs, and zamba's frame selection picks frames by their score at the config's confidence."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from kifaru.exceptions import ConfigError, PartialDecodeWarning
from kifaru.video.decode import StreamInfo
from kifaru.video.image import ImageSource
from kifaru.video.loaded import KEPT_BOX_THRESHOLD, ClipDetections, Prepared, average_rate
from kifaru.video.selection import select_by_scores


def relative_to_whole_frame(found: Any, kept_rows: float) -> Any:
    """FrameDetections of a frame whose bottom rows were cropped off (``kept_rows``: the share of
    its height the detector saw), with boxes relative to the whole frame."""
    if kept_rows == 1.0:
        return found
    return replace(found, boxes=found.boxes * np.array([1.0, kept_rows, 1.0, kept_rows]))


class DetectorSteps:
    """FrameLoader's methods that talk to the detector (``self.detector``, ``self.config``,
    ``self._detection_thread`` and ``self._open_and_decode`` come from FrameLoader)."""

    def detect(self, path: str | Path) -> "ClipDetections":
        """The detector's findings on every frame the config samples (no selection, no cache).

        Boxes are relative to the whole frame as displayed (rotation applied), even when
        ``crop_bottom_pixels`` kept the detector from seeing the bottom rows.
        """
        settings = self.config.megadetector_lite_config
        if settings is None:
            raise ConfigError("detect needs video_loader_config.megadetector_lite_config")
        path = Path(path)
        source, notes, prepared, plan = self._open_and_decode(path, keep_pixels=False)
        info = source.info
        frames = sorted(set(plan))
        detections = [found for _, _, found in self._scored_frames(frames, prepared, info)]
        for note in notes:
            warnings.warn(PartialDecodeWarning(note), stacklevel=2)
        return ClipDetections(
            path=path,
            is_image=isinstance(source, ImageSource),
            frame_numbers=frames,
            times=[float(info.timestamps[i]) for i in frames],
            detections=detections,
            frame_rate=average_rate(info),
            width=info.width,
            height=info.height,
            warnings=notes,
        )

    def _scored_frames(self, frames: list[int], prepared: "Prepared", info: StreamInfo) -> list[tuple[int, float, Any]]:
        """(frame number, time, detections) of ``frames``, boxes relative to the whole frame as
        displayed, even when ``crop_bottom_pixels`` kept the detector from seeing the bottom rows."""
        by_index = self._detections(prepared)
        return [(i, float(info.timestamps[i]), relative_to_whole_frame(by_index[i], prepared.kept_rows)) for i in frames]

    def _select_by_detector(
        self, plan: list[int], prepared: "Prepared"
    ) -> tuple[list[int], dict[int, float], Optional[str]]:
        """zamba's MegadetectorLite step: score every candidate frame, keep the chosen ones."""
        settings = self.config.megadetector_lite_config
        found = self._detections(prepared)  # upsampling repeats frames: each was scored once
        score_of = {i: found[i].score_at(settings.confidence) for i in plan}
        chosen, note = select_by_scores(
            [score_of[i] for i in plan],
            confidence=settings.confidence,
            n_frames=settings.n_frames,
            fill_mode=settings.fill_mode,
            sort_by_time=settings.sort_by_time,
            seed=settings.seed,
        )
        return [plan[k] for k in chosen], score_of, note

    def _submit_pending(self, prepared: "Prepared") -> None:
        """Score the frames waiting for the detector on a worker thread, while decoding goes on."""
        if not prepared.pending:
            return
        settings = self.config.megadetector_lite_config
        indices = list(prepared.pending)
        images, sizes = zip(*(prepared.pending.pop(i) for i in indices))
        if self._detection_thread is None:
            self._detection_thread = ThreadPoolExecutor(1, thread_name_prefix="kifaru-detect")
        future = self._detection_thread.submit(
            self.detector.detect_fitted,
            list(images),
            list(sizes),
            image_height=settings.image_height,
            image_width=settings.image_width,
            confidence=min(settings.confidence, KEPT_BOX_THRESHOLD),
            nms_threshold=settings.nms_threshold,
            batch_size=settings.frame_batch_size,
        )
        prepared.detecting.append((indices, future))

    def _detections(self, prepared: "Prepared") -> dict[int, Any]:
        """Every decoded frame's detections, by source index."""
        self._submit_pending(prepared)
        return {i: found for indices, future in prepared.detecting for i, found in zip(indices, future.result())}
