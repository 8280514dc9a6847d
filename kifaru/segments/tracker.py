"""A simple IoU tracker over the frames a detector scored, as pure functions.

The input is a record's ``frames`` (``{"frame_number", "time", "detections": [[x1, y1, x2, y2,
score], ...]}``, boxes relative to the frame, in time order). Frame by frame, each box at or above
``threshold`` joins the live track whose last box overlaps it most (IoU at least ``min_iou``;
pairs taken best first, so two animals side by side keep their own tracks), or starts a track.
A track that finds no box stays live for ``max_missed`` scored frames (a detector misses an
animal now and then: one miss does not cut a visit in two), then ends.

A track's interval runs from the time of its first box to the time of its last: the truth lies
within one scored-frame interval of each end (an animal that enters just after a scored frame is
first seen at the next one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Sighting:
    """One box of a track: the scored frame it is in, its time, the box and its score."""

    frame_number: int
    time: float
    box: Box
    score: float


@dataclass
class Track:
    sightings: list[Sighting] = field(default_factory=list)
    missed: int = 0  # scored frames since its last box

    @property
    def start(self) -> float:
        return self.sightings[0].time

    @property
    def end(self) -> float:
        return self.sightings[-1].time

    @property
    def best(self) -> Sighting:
        """Its most confident box (the first of equals)."""
        return max(self.sightings, key=lambda s: s.score)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes; 0 for boxes of no area."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def link_tracks(frames: Sequence[dict], threshold: float, *, min_iou: float = 0.1, max_missed: int = 1) -> list[Track]:
    """The tracks of ``frames`` (see the module), ordered by their first box (then by place)."""
    if not 0 <= min_iou <= 1:
        raise ValueError(f"min_iou must be between 0 and 1, got {min_iou}")
    if max_missed < 0:
        raise ValueError(f"max_missed must be 0 or more, got {max_missed}")
    live: list[Track] = []
    ended: list[Track] = []
    for frame in sorted(frames, key=lambda f: (f["time"], f["frame_number"])):
        boxes = [Sighting(int(frame["frame_number"]), float(frame["time"]), tuple(d[:4]), float(d[4])) for d in frame["detections"] if d[4] >= threshold]
        pairs = sorted(
            ((iou(track.sightings[-1].box, sighting.box), t, b) for t, track in enumerate(live) for b, sighting in enumerate(boxes)),
            key=lambda pair: (-pair[0], pair[1], pair[2]),
        )  # fmt: skip
        taken_tracks: set[int] = set()
        taken_boxes: set[int] = set()
        for overlap, t, b in pairs:
            if overlap < min_iou or overlap == 0:
                break
            if t in taken_tracks or b in taken_boxes:
                continue
            live[t].sightings.append(boxes[b])
            live[t].missed = 0
            taken_tracks.add(t)
            taken_boxes.add(b)
        still: list[Track] = []
        for t, track in enumerate(live):
            if t not in taken_tracks:
                track.missed += 1
                if track.missed > max_missed:
                    ended.append(track)
                    continue
            still.append(track)
        still += [Track([sighting]) for b, sighting in enumerate(boxes) if b not in taken_boxes]
        live = still
    tracks = ended + live
    return sorted(tracks, key=lambda track: (track.start, track.sightings[0].box))
