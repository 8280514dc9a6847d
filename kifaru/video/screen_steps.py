"""Fast mode's part of :class:`kifaru.video.loader.FrameLoader` (``self.screen`` set): the
screen of :mod:`kifaru.video.screen` run on a clip, then exact mode's scoring near its hits.

Anything out of the ordinary (a photo, a clip whose index is incomplete, a frame that does not
decode, damaged data) is left to exact mode, which knows what to do with it: fast mode only ever
takes the short way on a clip that reads cleanly.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np

from kifaru.exceptions import FrameSelectionWarning
from kifaru.video.decode import VideoSource
from kifaru.video.detector_steps import relative_to_whole_frame
from kifaru.video.image import ImageSource
from kifaru.video.loaded import DECIDED_BY_CLASSIFIER, DECIDED_BY_DETECTOR, KEPT_BOX_THRESHOLD, LoadedFrames, Prepared, average_rate
from kifaru.video.screen import near_hits, screen_positions
from kifaru.video.selection import plan_by_timestamps, select_by_scores
from kifaru.video.transform import crop_bottom, to_pix_fmt


class ScreenSteps:
    """FrameLoader's fast mode (``self.screen``, ``self.detector``, ``self.config`` and the
    decoding steps come from FrameLoader)."""

    def _load_screened(self, path: Path) -> Optional[LoadedFrames]:
        """The frames fast mode gives a clip (none, for a clip the screen calls empty), or None
        where exact mode is to read it."""
        from kifaru.video.loader import _stack_consuming, open_source

        config, settings = self.config, self.config.megadetector_lite_config
        source = open_source(path)
        try:
            info = source.info
            if isinstance(source, ImageSource) or not info.complete or config.scene_threshold:
                return None
            plan = plan_by_timestamps(config, info.timestamps, info.end_time, info.duration, info.keyframes)
            candidates = sorted(set(plan))
            if not candidates:
                return None
            times = [float(info.timestamps[i]) for i in candidates]
            looked_at = [candidates[p] for p in screen_positions(times, [info.keyframes[i] for i in candidates], self.screen.per_second)]
            screened = self._screen(source, looked_at)
            if screened is None:
                return None
            hits = [float(info.timestamps[i]) for i, found in zip(looked_at, screened) if found.score >= self.screen.threshold]
            screen_detections = [(i, float(info.timestamps[i]), found) for i, found in zip(looked_at, screened)]
            if not hits:
                return LoadedFrames(
                    np.zeros((0, 0, 0, 3), dtype=np.uint8), [], [], info, scores=[], detections=screen_detections,
                    frame_rate=average_rate(info), decided_by=DECIDED_BY_DETECTOR,
                )  # fmt: skip
            prepared = Prepared()
            full = [candidates[p] for p in near_hits(times, hits, self.screen.near_seconds)]
            self._decode_into(source, full, prepared)
            if set(full) - set(prepared.frames):
                return None
            scored = self._detections(prepared)
            score_of = {i: scored[i].score_at(settings.confidence) if i in scored else 0.0 for i in plan}
            chosen, note = select_by_scores(
                [score_of[i] for i in plan], confidence=settings.confidence, n_frames=settings.n_frames,
                fill_mode=settings.fill_mode, sort_by_time=settings.sort_by_time, seed=settings.seed,
            )  # fmt: skip
            selected = self._final_plan([plan[k] for k in chosen], source)
            if not selected:  # nothing above the confidence and no count to fill: exact mode says so
                return None
            # Frames chosen that were not scored (filling up to the count): their pixels, unscored.
            prepared.score_new = False
            self._decode_into(source, sorted(set(selected) - set(prepared.frames)), prepared)
            if set(selected) - set(prepared.frames) or prepared.damaged.intersection(selected):
                return None
        finally:
            source.close()
        if note:
            warnings.warn(FrameSelectionWarning(f"{path}: {note}"), stacklevel=3)
        full_detections = self._scored_frames(sorted(scored), prepared, info)
        detections = sorted([*full_detections, *(d for d in screen_detections if d[0] not in scored)], key=lambda d: d[0])
        frames = _stack_consuming(selected, prepared.frames)
        return LoadedFrames(
            to_pix_fmt(frames, config.pix_fmt), selected, [float(info.timestamps[i]) for i in selected], info,
            [f"{path}: {note}"] if note else [], scores=[score_of.get(i, float("nan")) for i in selected],
            detections=detections, frame_rate=average_rate(info), decided_by=DECIDED_BY_CLASSIFIER,
        )  # fmt: skip

    def _screen(self, source: VideoSource, frames: list[int]) -> Optional[list[Any]]:
        """The detector's findings on ``frames`` at the screen's input size (boxes relative to
        the whole frame), each decoded as small as the codec allows while it stays at least that
        size; None if one does not decode cleanly."""
        from kifaru.detection.megadetector_lite import fit_to_input

        settings, size = self.config.megadetector_lite_config, self.screen.image_size
        info = source.info
        crop = self.config.crop_bottom_pixels or 0
        factor = 1
        for candidate in source.lowres_factors():
            if max(info.width, info.height - crop) / candidate >= size:
                factor = candidate
        fitted, sizes, decoded = [], [], 0
        for frame in source.decode(frames, scale_down=factor, threaded=not self.detector.uses_every_core):
            if frame.damaged:
                return None
            rgb = crop_bottom(frame.to_rgb(), round(crop / factor))
            fitted.append(fit_to_input(rgb, size, size))
            sizes.append(rgb.shape[:2])
            decoded += 1
        if decoded != len(frames):
            return None
        found = self.detector.detect_fitted(
            fitted, sizes, image_height=size, image_width=size, confidence=min(self.screen.threshold, KEPT_BOX_THRESHOLD),
            nms_threshold=settings.nms_threshold, batch_size=settings.frame_batch_size,
        )  # fmt: skip
        kept_rows = (info.height - crop) / info.height
        return [relative_to_whole_frame(f, kept_rows) for f in found]

