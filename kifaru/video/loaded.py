"""What loading a file gives (the frames a model sees, thumbnails for a sheet, the detector's
findings per frame) and the state of one load while its frames are decoded and prepared."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from kifaru.video.decode import DecodedFrame, StreamInfo
from kifaru.video.sheet import MAX_TILE_WIDTH, MAX_TILES, evenly_chosen, to_tile

NO_FRAME = -1  # source index of a frame of zeros (nothing was selected at all)
# The detector's boxes are kept down to this score for the outputs (MegaDetector's own batch files
# keep 0.005; YOLOX-tiny finds few boxes that low), so that users can explore thresholds in
# Timelapse. Frame selection still uses megadetector_lite_config.confidence: a box below it
# counts for nothing there, exactly as when the detector dropped it.
KEPT_BOX_THRESHOLD = 0.05
# Who decided what a clip shows: the classifier, from its frames, or (fast mode) the detector's
# screen, which found no animal in it (and no frames were read for the classifier).
DECIDED_BY_CLASSIFIER = "classifier"
DECIDED_BY_DETECTOR = "detector"


@dataclass
class LoadedFrames:
    """The frames and where each came from."""

    frames: np.ndarray  # (frames, height, width, 3) uint8
    source_indices: list[int]  # per output frame: index of the source frame (presentation order)
    times: list[float]  # per output frame: its source frame's time in seconds
    info: Optional[StreamInfo] = None  # None when served from the cache
    warnings: list[str] = field(default_factory=list)
    from_cache: bool = False
    scores: Optional[list[float]] = None  # per output frame: its detector score (MegadetectorLite)
    # Every frame the detector scored (selected or not): (source frame number, time in seconds,
    # FrameDetections down to KEPT_BOX_THRESHOLD, boxes relative to the whole frame).
    detections: Optional[list[tuple[int, float, Any]]] = None
    frame_rate: Optional[float] = None  # the video's average frames per second (None for a photo)
    decided_by: Optional[str] = None  # fast mode: DECIDED_BY_DETECTOR when its screen found nothing


@dataclass
class Thumbnails:
    """Which frames a config selects from a file, and an even choice of them as small RGB tiles.

    What a contact sheet needs, without the selected frames themselves: see
    :meth:`FrameLoader.load_thumbnails`.
    """

    source_indices: list[int]  # per selected frame, as in LoadedFrames
    times: list[float]
    frame_shape: tuple[int, int, int]  # (height, width, 3) of each selected frame, as a model sees it
    tiles: list[np.ndarray]  # RGB, each at most max_width wide
    tile_positions: list[int]  # each tile's place among the selected frames
    info: Optional[StreamInfo] = None  # None when served from the cache
    warnings: list[str] = field(default_factory=list)
    from_cache: bool = False
    scores: Optional[list[float]] = None

    @property
    def selected_count(self) -> int:
        return len(self.source_indices)

    @classmethod
    def of(
        cls, loaded: LoadedFrames, pix_fmt: str, max_count: int = MAX_TILES, max_width: int = MAX_TILE_WIDTH
    ) -> "Thumbnails":
        """The thumbnails of frames already loaded (in ``pix_fmt``)."""
        positions = evenly_chosen(len(loaded.frames), max_count)
        rgb = (lambda frame: frame[..., ::-1]) if pix_fmt == "bgr24" else (lambda frame: frame)
        return cls(
            source_indices=loaded.source_indices,
            times=loaded.times,
            frame_shape=tuple(loaded.frames.shape[1:]),
            tiles=[to_tile(rgb(loaded.frames[p]), max_width) for p in positions],
            tile_positions=positions,
            info=loaded.info,
            warnings=loaded.warnings,
            from_cache=loaded.from_cache,
            scores=loaded.scores,
        )


@dataclass
class ClipDetections:
    """What :meth:`FrameLoader.detect` found in one file, frame by frame (source frame numbers)."""

    path: Path
    is_image: bool
    frame_numbers: list[int]
    times: list[float]
    detections: list[Any]  # FrameDetections, one per frame number
    frame_rate: Optional[float]
    width: int
    height: int
    warnings: list[str] = field(default_factory=list)


def detections_to_arrays(detections: Optional[list[tuple[int, float, Any]]]) -> dict[str, np.ndarray]:
    """The scored frames as two arrays for the frame cache (npz holds no ragged lists): the
    frames (number, time) and one row per box (frame number, x1, y1, x2, y2, score)."""
    if detections is None:
        return {}
    scored = np.asarray([(n, t) for n, t, _ in detections], dtype=np.float64).reshape(-1, 2)
    boxes = [[n, *box, score] for n, _, found in detections for box, score in zip(found.boxes, found.scores)]
    return {"scored_frames": scored, "scored_boxes": np.asarray(boxes, dtype=np.float64).reshape(-1, 6)}


def detections_from_arrays(cached: dict[str, np.ndarray]) -> Optional[list[tuple[int, float, Any]]]:
    if "scored_frames" not in cached:
        return None
    from kifaru.detection.megadetector_lite import FrameDetections

    boxes = cached["scored_boxes"]
    out = []
    for number, seconds in cached["scored_frames"]:
        rows = boxes[boxes[:, 0] == number]
        out.append((int(number), float(seconds), FrameDetections(rows[:, 1:5], rows[:, 5])))
    return out


def average_rate(info: StreamInfo) -> Optional[float]:
    """Frames per second over the stream (exact for constant-rate video)."""
    span = float(info.end_time - info.timestamps[0]) if info.timestamps else 0.0
    return info.frame_count / span if span > 0 else None


@dataclass
class Prepared:
    """Frames decoded and prepared so far for one load, by source index."""

    frames: dict[int, np.ndarray] = field(default_factory=dict)
    damaged: set[int] = field(default_factory=set)
    # Frames waiting for the detector: index -> (fitted to its input, (height, width) before fitting)
    pending: dict[int, tuple[np.ndarray, tuple[int, int]]] = field(default_factory=dict)
    detecting: list[tuple[list[int], Future]] = field(default_factory=list)  # scored on a worker thread
    keep_pixels: bool = True  # False: only the detector's copies are wanted
    kept_rows: float = 1.0  # share of the frame's height left after crop_bottom_pixels
    # Thumbnails: frames are kept shrunk to this width, and only those in keep_only when it is set.
    tile_width: Optional[int] = None
    keep_only: Optional[set[int]] = None
    frame_shape: tuple[int, ...] = (0, 0, 3)  # a kept frame's shape before it was shrunk to a tile
    score_new: bool = True  # frames decoded from now on go to the detector (with its config)

    def wants_pixels(self, index: int) -> bool:
        return self.keep_pixels and (self.keep_only is None or index in self.keep_only)

    def lacks_pixels(self, index: int) -> bool:
        """Decoded before its pixels were wanted (a plan made again after a decoding failure)."""
        return self.wants_pixels(index) and self.frames.get(index) is None

    def add(self, frame: DecodedFrame, pixels: Optional[np.ndarray]) -> None:
        self.frames[frame.index] = pixels
        if frame.damaged:
            self.damaged.add(frame.index)


@dataclass(frozen=True)
class TileRequest:
    max_count: int
    max_width: int
