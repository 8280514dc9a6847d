"""The labels of an image training run: which photos, which classes, which split, which sequence.

A labels CSV is read in one of the layouts camera-trap projects keep:

- ``filepath, label`` rows, as zamba's (several rows for one photo: all its species);
- ``filepath`` and one 0/1 column per class (one-hot or multi-label);
- the same keyed by ``seq_id`` instead of ``filepath`` (the Hakuna Ma-data benchmark's
  ``train_labels.csv``), with ``sequence_files`` (a CSV of ``filepath, seq_id``) linking the
  photos to their sequence: each photo of a sequence gets the sequence's labels.

Optional columns (in the labels or in ``sequence_files``): ``split`` (train, val, test), ``seq_id``
and any grouping column named by ``split_by`` (season, site). ``label`` rows may carry a box,
zamba's ``x1, y1, x2, y2`` (pixels, or relative where all four are at most 1): each row is then
one crop with its own label, and no detector runs. Filepaths are relative to
``data_dir`` unless absolute. Classes are lower-cased from ``label`` rows (as zamba) and sorted,
or taken in the order of the one-hot columns; ``species_in_label_order`` sets the order.

A JSON file (``labels_format`` coco or megadetector, as zamba) is read as ``label`` rows with boxes
(``kifaru.train.json_labels``).

Splits, when the labels have none, never put one group in two splits: the ``split_by`` group, else
the photo's sequence (the photos of one trigger are near copies: a burst split across train and
val would inflate the val score), else each photo alone, drawn per class as zamba draws them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from kifaru.config.image import SPLITS, LabelsFormat
from kifaru.exceptions import ConfigError
from kifaru.images.sequences import SEQ_ID_COLUMN
from kifaru.runs.inputs import read_csv_rows
from kifaru.train.json_labels import read_json_label_rows
from kifaru.train.labels import LabelsWarning, site_splits, species_splits, split_seed

FILEPATH = "filepath"
LABEL = "label"
SPLIT = "split"
BOX_COLUMNS = ("x1", "y1", "x2", "y2")
_SPLIT_ALIASES = {"holdout": "test"}  # a video labels file's name for it
_ONE = {"1", "1.0", "true", "yes"}
_ZERO = {"0", "0.0", "false", "no", ""}


@dataclass
class LabelledPhotos:
    """One entry per labelled photo, in path order."""

    filepaths: list[str]
    species: list[str]
    targets: np.ndarray  # (photos, species) 0/1
    splits: list[str]  # "" until split
    seq_ids: list[Optional[str]]
    groups: list[Optional[str]]  # the split_by column's value
    source: str
    notes: list[str] = field(default_factory=list)
    # Boxes given in the labels: per photo, [(x1, y1, x2, y2), class] (pixels, or all <= 1: relative).
    boxes: Optional[list[list[tuple[tuple[float, ...], str]]]] = None

    def indices(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.splits) if s == split]

    def keep(self, filepaths: set[str]) -> "LabelledPhotos":
        """Only the photos in ``filepaths`` (those that could be used)."""
        rows = [i for i, f in enumerate(self.filepaths) if f in filepaths]
        return replace(
            self, filepaths=[self.filepaths[i] for i in rows], targets=self.targets[rows], splits=[self.splits[i] for i in rows],
            seq_ids=[self.seq_ids[i] for i in rows], groups=[self.groups[i] for i in rows],
            boxes=None if self.boxes is None else [self.boxes[i] for i in rows],
        )  # fmt: skip

    def with_species(self, species: Sequence[str]) -> "LabelledPhotos":
        """Targets over ``species`` (a superset of the labels' classes, e.g. a model's own)."""
        index = [list(species).index(name) for name in self.species]
        targets = np.zeros((len(self.filepaths), len(species)), dtype=self.targets.dtype)
        targets[:, index] = self.targets
        return replace(self, species=list(species), targets=targets)

    def box_targets(self, photo: int, box: int) -> np.ndarray:
        """The 0/1 target of box ``box`` of photo ``photo`` (its own row's class)."""
        target = np.zeros(len(self.species), dtype=self.targets.dtype)
        target[self.species.index(self.boxes[photo][box][1])] = 1  # type: ignore[index]
        return target


def read_image_labels(
    labels: Path,
    data_dir: Path,
    *,
    sequence_files: Optional[Path] = None,
    split_by: Optional[str] = None,
    species_in_label_order: Optional[Sequence[str]] = None,
    labels_format: LabelsFormat = LabelsFormat.coco,
) -> LabelledPhotos:
    """The labelled photos (see the module); ConfigError naming the file, column or row at fault."""
    notes: list[str] = []
    if Path(labels).suffix.lower() == ".json":
        columns, records, notes = read_json_label_rows(labels, labels_format)
    else:
        columns, records = read_csv_rows(labels, "labels")
    source = str(labels)
    if not records:
        raise ConfigError(f"labels {labels}: no rows")
    key = FILEPATH if FILEPATH in columns else SEQ_ID_COLUMN if SEQ_ID_COLUMN in columns else None
    if key is None:
        raise ConfigError(f"labels {labels}: needs a 'filepath' column (or 'seq_id', with sequence_files); found {', '.join(columns)}")
    if key == SEQ_ID_COLUMN and sequence_files is None:
        raise ConfigError(f"labels {labels}: labels by seq_id need sequence_files, a CSV of filepath and seq_id linking the photos to them")
    reserved = {FILEPATH, SEQ_ID_COLUMN, LABEL, SPLIT, *BOX_COLUMNS} | ({split_by} if split_by else set())
    by_key, classes = _classes_by_key(labels, columns, records, key, reserved)
    extra = _column_by_key(records, key, [SPLIT, SEQ_ID_COLUMN, split_by])

    if key == SEQ_ID_COLUMN:
        files_columns, files = read_csv_rows(sequence_files, "sequence_files")
        for needed in (FILEPATH, SEQ_ID_COLUMN):
            if needed not in files_columns:
                raise ConfigError(f"sequence_files {sequence_files}: needs '{needed}' and 'seq_id' columns; found {', '.join(files_columns)}")
        file_extra = _column_by_key(files, FILEPATH, [SPLIT, split_by])
        photos: dict[str, tuple[list[str], str]] = {}
        unlabelled = 0
        for row in files:
            seq_id, filepath = (row.get(SEQ_ID_COLUMN) or "").strip(), (row.get(FILEPATH) or "").strip()
            if not filepath:
                continue
            if seq_id not in by_key:
                unlabelled += 1
                continue
            photos[filepath] = (by_key[seq_id], seq_id)
        without = sorted(set(by_key) - {seq for _, seq in photos.values()})
        if unlabelled:
            notes.append(f"{unlabelled} photo(s) of sequence_files belong to sequences without labels: not used")
        if without:
            notes.append(f"{len(without)} labelled sequence(s) have no photo in sequence_files (e.g. {without[0]}): not used")
        if not photos:
            raise ConfigError(f"sequence_files {sequence_files}: none of its photos belongs to a sequence labelled in {labels}")

        def value(column: Optional[str], filepath: str, seq_id: str) -> Optional[str]:
            if column is None:
                return None
            return file_extra[column].get(filepath) or extra[column].get(seq_id)

        entries = sorted((f, classes_, seq) for f, (classes_, seq) in photos.items())
        rows = [(f, c, seq, value(SPLIT, f, seq), value(split_by, f, seq)) for f, c, seq in entries]
        group_columns = set(columns) | set(files_columns)
    else:
        rows = [(f, c, extra[SEQ_ID_COLUMN].get(f), extra[SPLIT].get(f), extra[split_by].get(f) if split_by else None) for f, c in sorted(by_key.items())]
        group_columns = set(columns)
    if split_by is not None and split_by not in group_columns:
        raise ConfigError(f"split_by {split_by}: no such column in {labels}{' or ' + str(sequence_files) if sequence_files else ''} (found {', '.join(sorted(group_columns))})")

    boxes = _boxes(labels, columns, records, key, [r[0] for r in rows])
    species = _ordered(classes, species_in_label_order, labels)
    index = {name: i for i, name in enumerate(species)}
    targets = np.zeros((len(rows), len(species)), dtype=np.int64)
    for i, (_, names, *_rest) in enumerate(rows):
        targets[i, [index[n] for n in names]] = 1
    splits = [_split(split, labels, filepath) for filepath, _, _, split, _ in rows]
    if any(splits) and not all(splits):
        missing = next(f for (f, *_), s in zip(rows, splits) if not s)
        raise ConfigError(f"labels {labels}: some photos have a split and others not (e.g. {missing}); give every photo one, or none")
    filepaths = [f if Path(f).is_absolute() else str(Path(data_dir) / f) for f, *_ in rows]
    return LabelledPhotos(filepaths, species, targets, splits, [r[2] for r in rows], [r[4] for r in rows], source, notes, boxes)


def _boxes(labels: Path, columns: list[str], records: list[dict[str, str]], key: str, keys: Sequence[str]) -> Optional[list]:
    """Each photo's boxes and their classes, where the labels give x1, y1, x2, y2 (else None)."""
    if not all(c in columns for c in BOX_COLUMNS) or LABEL not in columns or key != FILEPATH:
        return None
    by_photo: dict[str, list] = {}
    for number, record in enumerate(records, start=2):
        label = (record.get(LABEL) or "").strip().lower()
        if not label:
            continue
        values = [(record.get(c) or "").strip() for c in BOX_COLUMNS]
        if not all(values):
            raise ConfigError(
                f"labels {labels}, line {number}: no box ({', '.join(BOX_COLUMNS)} empty) where other rows have one; "
                "give every row its box, or drop the box columns (the detector then finds the animals)"
            )
        try:
            box = tuple(float(v) for v in values)
        except ValueError:
            raise ConfigError(f"labels {labels}, line {number}: the box {', '.join(values)} is not four numbers") from None
        if not (box[0] < box[2] and box[1] < box[3]):
            raise ConfigError(f"labels {labels}, line {number}: the box {', '.join(values)} is empty (x1 < x2 and y1 < y2 are needed)")
        by_photo.setdefault((record.get(key) or "").strip(), []).append((box, label))
    return [by_photo.get(k, []) for k in keys]


def _classes_by_key(labels: Path, columns: list[str], records: list[dict[str, str]], key: str, reserved: set[str]) -> tuple[dict[str, list[str]], list[str]]:
    """key -> its classes, and the classes in the file's order."""
    by_key: dict[str, list[str]] = {}
    left_out = 0
    if LABEL in columns:
        for record in records:
            name, label = (record.get(key) or "").strip(), (record.get(LABEL) or "").strip().lower()
            if not name:
                raise ConfigError(f"labels {labels}: a row with label '{label}' has no {key}")
            if not label:
                left_out += 1
                continue
            if label not in by_key.setdefault(name, []):
                by_key[name].append(label)
        classes = sorted({c for names in by_key.values() for c in names})
    else:
        classes = [c for c in columns if c not in reserved]
        if not classes:
            raise ConfigError(f"labels {labels}: needs a 'label' column or one 0/1 column per class; found only {', '.join(columns)}")
        for number, record in enumerate(records, start=2):
            name = (record.get(key) or "").strip()
            present = []
            for column in classes:
                value = (record.get(column) or "").strip().lower()
                if value in _ONE:
                    present.append(column)
                elif value not in _ZERO:
                    raise ConfigError(
                        f"labels {labels}, line {number}: column '{column}' holds '{record.get(column)}', not 0 or 1; "
                        "a class column holds 0/1 (a grouping column such as season: name it in split_by)"
                    )
            if not present:
                left_out += 1
                continue
            by_key[name] = present
    if left_out:
        warnings.warn(LabelsWarning(f"labels {labels}: {left_out} row(s) with no label left out"), stacklevel=3)
    if not by_key:
        raise ConfigError(f"labels {labels}: no row has a label")
    return by_key, classes


def _column_by_key(records: list[dict[str, str]], key: str, columns: Sequence[Optional[str]]) -> dict[Optional[str], dict[str, str]]:
    """column -> (key -> its first non-empty value), for each of ``columns`` (None: none)."""
    out: dict[Optional[str], dict[str, str]] = {}
    for column in columns:
        values: dict[str, str] = {}
        if column is not None:
            for record in records:
                value = (record.get(column) or "").strip()
                if value:
                    values.setdefault((record.get(key) or "").strip(), value)
        out[column] = values
    return out


def _ordered(classes: list[str], order: Optional[Sequence[str]], labels: Path) -> list[str]:
    if order is None:
        return list(classes)
    order = [name.lower() if name.lower() in classes else name for name in order]
    missing = sorted(set(classes) - set(order))
    if missing:
        raise ConfigError(f"species_in_label_order leaves out classes of labels {labels}: {', '.join(missing)}")
    return list(order)


def _split(value: Optional[str], labels: Path, filepath: str) -> str:
    if not value:
        return ""
    split = _SPLIT_ALIASES.get(value.strip().lower(), value.strip().lower())
    if split not in SPLITS:
        raise ConfigError(f"labels {labels}: {filepath} has split '{value}'; split can only be {', '.join(SPLITS)}")
    return split


def split_photos(photos: LabelledPhotos, proportions: Optional[Mapping[str, int]]) -> LabelledPhotos:
    """``photos`` with a split each: the labels' own, else drawn keeping groups together (see the module)."""
    if all(photos.splits):
        return photos
    proportions = dict(proportions or {"train": 3, "val": 1, "test": 1})
    groups = photos.groups if any(g is not None for g in photos.groups) else photos.seq_ids
    if any(g is not None for g in groups):
        splits = site_splits(list(groups), proportions, seed=split_seed())
    else:
        splits = species_splits(photos.targets, photos.species, proportions, split_seed())
    return replace(photos, splits=splits)


def image_splits_csv(photos: LabelledPhotos) -> str:
    """filepath, split, seq_id (where known), and each photo's classes."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([FILEPATH, SPLIT, SEQ_ID_COLUMN, "labels"])
    for filepath, split, seq_id, target in zip(photos.filepaths, photos.splits, photos.seq_ids, photos.targets):
        writer.writerow([filepath, split, seq_id or "", ";".join(s for s, t in zip(photos.species, target) if t)])
    return out.getvalue()
