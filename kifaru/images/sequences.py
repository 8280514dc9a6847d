"""Bursts: photos grouped into sequences (one trigger of a camera), and a sequence's photos made
one event. Pure functions over names, times and scores; the photos' times come from EXIF
(:func:`taken_at`), read where the photo is read.

Grouping (:func:`group_sequences`):

- a ``seq_id`` given per photo (a column of the filepaths or labels CSV) is used as it is;
- otherwise per camera (the photo's folder), photos in time order, a new sequence wherever the
  gap to the previous photo exceeds ``gap_seconds``;
- a photo without a time (no EXIF ``DateTimeOriginal``) cannot be placed in time: it is its own
  sequence, in name order after the camera's timed photos, and listed in ``untimed`` so that the
  caller can say so (kifaru never guesses which burst it belongs to).

Aggregation (:func:`aggregate`): each photo's scores (for a photo with several crops, per class the
largest over its crops, and for the empty classes the smallest: a photo is empty only where every
crop says so) combined over the sequence's photos by ``mean``, ``weighted_mean`` (weights: each
photo's highest detection confidence) or ``max``; the empty classes (``blank``, ``empty``) always
by the geometric mean, as the winner of the Hakuna Ma-data benchmark did: one photo that sees no
animal then pulls the sequence's "empty" down less than an arithmetic mean would push it up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

SEQ_ID_COLUMN = "seq_id"  # the column naming a photo's sequence, in inputs and outputs
EMPTY_CLASSES = frozenset({"blank", "empty"})
AGGREGATIONS = ("mean", "weighted_mean", "max")
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_EXIF_TIME_FORMAT = "%Y:%m:%d %H:%M:%S"


def taken_at(exif: Mapping[int, object]) -> Optional[datetime]:
    """The EXIF ``DateTimeOriginal`` of a photo (``PIL.Image.getexif()``), or None where it has none
    or it is not a time (cameras write "0000:00:00 00:00:00" when their clock was never set)."""
    try:
        value = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL)  # type: ignore[attr-defined]
    except (AttributeError, KeyError, TypeError, ValueError):
        value = None
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip("\x00 ").strip()[:19], _EXIF_TIME_FORMAT)
    except ValueError:
        return None


@dataclass(frozen=True)
class PhotoInBurst:
    name: str  # as the outputs name it
    taken: Optional[datetime] = None
    seq_id: Optional[str] = None  # given by the user


@dataclass
class Grouping:
    seq_ids: dict[str, str]  # photo name -> its sequence
    untimed: list[str] = field(default_factory=list)  # photos placed by name, not time
    rule: str = ""  # how the photos were grouped, in words (for the outputs' metadata)
    # What it was made from, to make it again over more photos (merged shards): the seq_ids the
    # user gave, and the gap that starts a new sequence.
    given: dict[str, str] = field(default_factory=dict)
    gap_seconds: float = 60.0

    def sequences(self) -> dict[str, list[str]]:
        """seq_id -> its photos, in the order the photos were given."""
        grouped: dict[str, list[str]] = {}
        for name, seq_id in self.seq_ids.items():
            grouped.setdefault(seq_id, []).append(name)
        return grouped


def group_sequences(photos: Iterable[PhotoInBurst], gap_seconds: float = 60.0) -> Grouping:
    """Each photo's sequence (see the module). Automatic ids are the camera folder (relative to the
    folder holding every photo) and the sequence's number in it: ``cam1/0001``."""
    photos = list(photos)
    given = {p.name: str(p.seq_id) for p in photos if p.seq_id is not None}
    if photos and len(given) == len(photos):
        return Grouping(dict(given), rule="the seq_id given for each photo", given=given, gap_seconds=gap_seconds)
    by_camera: dict[str, list[PhotoInBurst]] = {}
    for photo in photos:
        if photo.seq_id is None:
            by_camera.setdefault(str(PurePosixPath(photo.name.replace("\\", "/")).parent), []).append(photo)
    common = _common_folder(list(by_camera))
    seq_ids = {p.name: str(p.seq_id) for p in photos if p.seq_id is not None}
    untimed: list[str] = []
    for camera, members in sorted(by_camera.items()):
        label = os.path.relpath(camera, common) if common else camera
        label = "" if label == "." else label.replace(os.sep, "/") + "/"
        timed = sorted((p for p in members if p.taken is not None), key=lambda p: (p.taken, p.name))
        number, previous = 0, None
        for photo in timed:
            if previous is None or (photo.taken - previous).total_seconds() > gap_seconds:
                number += 1
            previous = photo.taken
            seq_ids[photo.name] = f"{label}{number:04d}"
        for photo in sorted((p for p in members if p.taken is None), key=lambda p: p.name):
            number += 1
            seq_ids[photo.name] = f"{label}{number:04d}"
            untimed.append(photo.name)
    rule = f"by camera folder and EXIF DateTimeOriginal: a new sequence after a gap of more than {gap_seconds:g} s"
    return Grouping({p.name: seq_ids[p.name] for p in photos}, untimed, rule, given, gap_seconds)


def burst_key(name: str, given_seq_id: Optional[str]) -> str:
    """What keeps a photo's burst together when files are split (shards): its given seq_id, else
    its camera folder (automatic sequences never span two folders)."""
    if given_seq_id is not None:
        return f"seq_id:{given_seq_id}"
    return str(PurePosixPath(name.replace("\\", "/")).parent)


def _common_folder(cameras: list[str]) -> str:
    if len(cameras) <= 1:
        return next(iter(cameras), "")
    try:
        return os.path.commonpath(cameras)
    except ValueError:  # absolute and relative names mixed: keep the folders whole
        return ""


def photo_scores(crop_scores: Sequence[Sequence[float]], classes: Sequence[str]) -> np.ndarray:
    """One photo's scores from its crops' (see the module)."""
    scores = np.asarray(crop_scores, dtype=np.float64)
    if scores.ndim != 2 or not len(scores):
        raise ValueError("a photo's scores need at least one crop")
    combined = scores.max(axis=0)
    empty = _empty_columns(classes)
    combined[empty] = scores[:, empty].min(axis=0)
    return combined


def aggregate(scores: Sequence[Sequence[float]], classes: Sequence[str], how: str = "mean", weights: Optional[Sequence[float]] = None) -> np.ndarray:
    """A sequence's scores from its photos' (rows of ``scores``), by ``how`` (see the module)."""
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 2 or not len(values):
        raise ValueError("a sequence's scores need at least one photo")
    if how == "mean":
        combined = values.mean(axis=0)
    elif how == "weighted_mean":
        w = np.asarray(weights if weights is not None else np.ones(len(values)), dtype=np.float64)
        if w.shape != (len(values),) or (w < 0).any():
            raise ValueError("weighted_mean needs one non-negative weight per photo")
        combined = (w @ values) / w.sum() if w.sum() > 0 else values.mean(axis=0)
    elif how == "max":
        combined = values.max(axis=0)
    else:
        raise ValueError(f"unknown aggregation '{how}'; aggregations: {', '.join(AGGREGATIONS)}")
    empty = _empty_columns(classes)
    if empty.any():
        with np.errstate(divide="ignore"):
            combined[empty] = np.exp(np.log(values[:, empty]).mean(axis=0))
    return combined


def _empty_columns(classes: Sequence[str]) -> np.ndarray:
    return np.array([name.lower() in EMPTY_CLASSES for name in classes], dtype=bool)
