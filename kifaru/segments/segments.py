"""A clip's time segments: one per track of the detector's boxes, labelled with a species.

The species of a segment is the most likely class that is not ``blank`` (a segment is a sighting
of an animal), with that probability: of its own crops where an image classifier labelled them
(:mod:`kifaru.segments.crops`), else of the clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

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
    species_from: str = "clip"  # "crops": the image classifier's, on this segment's boxes


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
    crops: Sequence[dict] = (),
    crop_species: Sequence[str] = (),
) -> list[Segment]:
    """The segments of one clip's scored ``frames`` (a record's), in order of start time.
    ``crops``: the record's classified crops (``outputs["segment_crops"]``), over ``crop_species``."""
    from kifaru.segments.crops import track_classes

    name, probability = clip_species(species, probabilities)
    segments = []
    for number, track in enumerate(link_tracks(frames, threshold, min_iou=min_iou, max_missed=max_missed), start=1):
        best = track.best
        labelled = track_classes(track, crops) if crops and crop_species else None
        if labelled is not None:
            own, own_probability = clip_species(crop_species, labelled.tolist())
            segment = Segment(filepath, number, track.start, track.end, own, own_probability, best.score, best.frame_number, best.box, "crops")
        else:
            segment = Segment(filepath, number, track.start, track.end, name, probability, best.score, best.frame_number, best.box)
        segments.append(segment)
    return segments


def record_segments(record: Any, run: Any, threshold: float) -> list[Segment]:
    """The segments of a clip's record (kifaru.runs.records.Record) in a run (RunDescription):
    labelled by its crops where the run's image classifier classified them."""
    from kifaru.segments.crops import SEGMENT_CROPS

    return clip_segments(
        record.item, record.frames, threshold, run.species, record.probabilities,
        crops=record.outputs.get(SEGMENT_CROPS) or (), crop_species=run.crop_species,
    )  # fmt: skip
