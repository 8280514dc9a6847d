"""What a file's record says, in the terms a person reviewing results uses: its most likely class,
whether the detector saw an animal, where (the best frame and its boxes), when (the time
segments), and why it may need a second look. Pure functions of a record and its run; the report
and the Camtrap DP export both read files through them, so that they never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from kifaru.images.sequences import EMPTY_CLASSES
from kifaru.outputs import RunDescription
from kifaru.outputs.megadetector_json import ANIMAL_CATEGORY, DETECTION_CATEGORIES
from kifaru.outputs.sequence_csv import photo_evidence
from kifaru.runs.records import MEDIA_VIDEO, Record
from kifaru.segments.segments import Segment, record_segments

DEFAULT_REVIEW_BELOW = 0.5  # a top probability under it is flagged for review


@dataclass(frozen=True)
class Box:
    box: tuple[float, float, float, float]  # relative x1, y1, x2, y2
    score: float
    category: str = "animal"  # animal, person, vehicle


@dataclass(frozen=True)
class FileSummary:
    item: str
    media: str
    failed: bool = False
    stage: Optional[str] = None
    reason: Optional[str] = None
    classes: tuple[tuple[str, float], ...] = ()  # every class and its probability, most likely first
    animal_seen: Optional[bool] = None  # by the detector at the run's threshold (None: no detector)
    max_confidence: float = 0.0
    best_frame_number: Optional[int] = None  # the frame with the most confident box (else the first scored)
    best_frame_time: Optional[float] = None
    boxes: tuple[Box, ...] = ()  # at the best frame, at or above the threshold
    segments: tuple[Segment, ...] = ()
    review: tuple[str, ...] = ()  # why a person should look again
    notes: tuple[str, ...] = ()
    taken: Optional[str] = None  # a photo's EXIF time (ISO 8601, as the camera wrote it)
    frame_rate: Optional[float] = None

    @property
    def species(self) -> Optional[str]:
        """The most likely class (None without a classifier)."""
        return self.classes[0][0] if self.classes else None

    @property
    def probability(self) -> Optional[float]:
        return self.classes[0][1] if self.classes else None

    @property
    def blank(self) -> bool:
        """Nothing in it: the classifier's top class is blank/empty, or (without one) the detector saw nothing."""
        if self.failed:
            return False
        if self.classes:
            return is_empty_class(self.classes[0][0])
        return self.animal_seen is False

    @property
    def label(self) -> str:
        """What the file is filed under: its top class, ``animal``/``blank`` from the detector alone, or ``failed``."""
        if self.failed:
            return "failed"
        if self.classes:
            return self.classes[0][0]
        if self.animal_seen is None:
            return "unclassified"
        return "animal" if self.animal_seen else "blank"

    @property
    def seen(self) -> Optional[tuple[float, float]]:
        """The first and last time (seconds) an animal is seen in a clip."""
        if not self.segments:
            return None
        return min(s.start for s in self.segments), max(s.end for s in self.segments)


def is_empty_class(name: str) -> bool:
    return name.lower() in EMPTY_CLASSES


def summarize(record: Record, run: RunDescription, *, review_below: float = DEFAULT_REVIEW_BELOW) -> FileSummary:
    """The summary of one record (see the module)."""
    if record.failed:
        return FileSummary(record.item, record.media, True, record.stage, record.reason, notes=tuple(record.notes))
    threshold = run.animal_threshold()
    scores = file_scores(record, run.species)
    classes = tuple(sorted(zip(run.species, scores), key=lambda pair: -pair[1])) if scores is not None else ()
    best = _best_frame(record)
    boxes = ()
    if best is not None and threshold is not None:
        categories = best.get("categories") or [ANIMAL_CATEGORY] * len(best["detections"])
        boxes = tuple(
            Box(tuple(d[:4]), d[4], DETECTION_CATEGORIES.get(str(c), str(c))) for d, c in zip(best["detections"], categories) if d[4] >= threshold
        )
    animal_seen = None if threshold is None else any(_is_animal(f, threshold) for f in record.frames)
    segments = ()
    if record.media == MEDIA_VIDEO and threshold is not None:
        segments = tuple(record_segments(record, run, threshold))
    summary = FileSummary(
        record.item,
        record.media,
        classes=tuple((name, float(p)) for name, p in classes),
        animal_seen=animal_seen,
        max_confidence=record.max_confidence(),
        best_frame_number=None if best is None else best["frame_number"],
        best_frame_time=None if best is None else best.get("time"),
        boxes=boxes,
        segments=segments,
        notes=tuple(record.notes),
        taken=record.outputs.get("taken"),
        frame_rate=record.frame_rate,
    )
    return _with_review(summary, review_below)


def file_scores(record: Record, species: Sequence[str]) -> Optional[list[float]]:
    """A file's probability per class: a clip's, or a photo's from its crops (None: not classified)."""
    if record.probabilities is not None:
        return [float(p) for p in record.probabilities]
    evidence = photo_evidence(record, species)
    return None if evidence is None else [float(p) for p in evidence[0]]


def _best_frame(record: Record) -> Optional[dict]:
    scored = [(max((d[4] for d in f["detections"]), default=-1.0), -i, f) for i, f in enumerate(record.frames)]
    return max(scored, key=lambda t: (t[0], t[1]))[2] if scored else None


def _is_animal(frame: dict, threshold: float) -> bool:
    categories = frame.get("categories") or [ANIMAL_CATEGORY] * len(frame["detections"])
    return any(d[4] >= threshold and str(c) == ANIMAL_CATEGORY for d, c in zip(frame["detections"], categories))


def _with_review(summary: FileSummary, review_below: float) -> FileSummary:
    from dataclasses import replace

    reasons = []
    if summary.probability is not None and summary.probability < review_below:
        reasons.append(f"low confidence: {summary.species} at {summary.probability:.2f}, under {review_below:g}")
    if summary.classes and summary.animal_seen is not None:
        top_is_empty = is_empty_class(summary.classes[0][0])
        if summary.animal_seen and top_is_empty:
            reasons.append(f"the detector found an animal ({summary.max_confidence:.2f}) but the classifier says {summary.species}")
        elif not summary.animal_seen and not top_is_empty:
            reasons.append(f"the detector found no animal but the classifier says {summary.species} ({summary.probability:.2f})")
    return replace(summary, review=tuple(reasons))
