"""A clip's time segments: one per track of the detector's boxes, labelled with a species.

The species of a segment is, for now, the clip's own: its most likely class that is not
``blank`` (a segment is a sighting of an animal), with that probability. Per-crop species from
an image classifier replace it where one is given (issue 16, a later step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from kifaru.images.sequences import EMPTY_CLASSES
from kifaru.segments.tracker import Box, link_tracks


@dataclass(frozen=True)
class Segment:
    filepath: str
    segment: int  # 1, 2, ... in order of start time
    start: float  # seconds, the first scored frame it is seen in
    end: float  # seconds, the last
    species: Optional[str]  # None: the clip has no species probabilities (detect runs)
    probability: Optional[float]
    max_detection_confidence: float
    best_frame_number: int
    best_box: Box  # relative x1, y1, x2, y2 at its most confident frame


def clip_species(species: Sequence[str], probabilities: Optional[Sequence[float]]) -> tuple[Optional[str], Optional[float]]:
    """The clip's most likely class other than blank/empty, and its probability (None, None without probabilities)."""
    if not probabilities:
        return None, None
    animals = [(p, s) for s, p in zip(species, probabilities) if s.lower() not in EMPTY_CLASSES]
    if not animals:
        return None, None
    probability, name = max(animals, key=lambda pair: pair[0])
    return name, float(probability)


def clip_segments(
    filepath: str,
    frames: Sequence[dict],
    threshold: float,
    species: Sequence[str] = (),
    probabilities: Optional[Sequence[float]] = None,
    *,
    min_iou: float = 0.1,
    max_missed: int = 1,
) -> list[Segment]:
    """The segments of one clip's scored ``frames`` (a record's), in order of start time."""
    name, probability = clip_species(species, probabilities)
    segments = []
    for number, track in enumerate(link_tracks(frames, threshold, min_iou=min_iou, max_missed=max_missed), start=1):
        best = track.best
        segments.append(Segment(filepath, number, track.start, track.end, name, probability, best.score, best.frame_number, best.box))
    return segments
