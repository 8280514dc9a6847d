"""The labels file of a training run: read, checked, one row per clip, and split.

zamba 2.7.2's rules (spec section 6), so that its users' labels files give the same training
set, species order and splits:

- columns ``filepath`` and ``label``, optional ``site`` and ``split``; filepaths are joined to
  ``data_dir``; labels are lowercased; rows with no label are dropped (an error if all are);
- several rows for one file make it multi-label; files are ordered by their path;
- the species are the model's (its head kept) when the labels are a subset of them and
  ``use_default_model_labels`` is not false, else the labels' own, sorted (a new head);
- two species where every clip has exactly one become one output (``blank`` if present);
- a ``split`` column must be filled with train/val/holdout; otherwise splits are made: by
  ``site`` when there is one (no site in two splits), else per species with Python's ``random``
  seeded by ``SPLIT_SEED`` (env, default 4007), one clip in each split first.
"""

from __future__ import annotations

import csv
import io
import os
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from kifaru.exceptions import ConfigError

SPLITS = ("train", "val", "holdout")
DEFAULT_SPLIT_SEED = 4007  # zamba's SPLIT_SEED
SITE_SPLIT_SEED = 989  # zamba's seed for clips without a site


class LabelsWarning(UserWarning):
    """Rows of the labels file left out or settings overridden by it (the message says which)."""


@dataclass(frozen=True)
class LabelRow:
    filepath: str  # joined to data_dir
    label: str
    site: Optional[str] = None
    split: Optional[str] = None


@dataclass(frozen=True)
class LabelsFile:
    rows: list[LabelRow]
    has_split: bool
    has_site: bool
    source: str  # the file, for messages


@dataclass
class LabelledClips:
    """One entry per clip, in zamba's order (by filepath)."""

    filepaths: list[str]
    species: list[str]
    targets: np.ndarray  # (clips, species) 0/1
    splits: list[str]
    sites: list[Optional[str]] = field(default_factory=list)

    def subset(self, split: str) -> tuple[list[str], np.ndarray]:
        chosen = [i for i, s in enumerate(self.splits) if s == split]
        return [self.filepaths[i] for i in chosen], self.targets[chosen]

    def without(self, filepaths: Iterable[str]) -> "LabelledClips":
        drop = set(filepaths)
        keep = [i for i, f in enumerate(self.filepaths) if f not in drop]
        return LabelledClips(
            [self.filepaths[i] for i in keep],
            self.species,
            self.targets[keep],
            [self.splits[i] for i in keep] if self.splits else [],
            [self.sites[i] for i in keep] if self.sites else [],
        )


def _null(value: Optional[str]) -> bool:
    return value is None or value.strip() == "" or value.strip().lower() in {"nan", "none", "null"}


def read_labels(labels: Path | Sequence[Mapping[str, object]], data_dir: Optional[Path] = None) -> LabelsFile:
    """The rows of a labels CSV (or of records, e.g. ``DataFrame.to_dict("records")``), checked.

    Raises ConfigError naming the file and the problem.
    """
    source = str(labels) if isinstance(labels, (str, Path)) else "(rows given in Python)"
    if isinstance(labels, (str, Path)):
        from kifaru.runs.inputs import read_csv_rows

        columns, records = read_csv_rows(Path(labels), "labels")
    else:
        records = [dict(record) for record in labels]
        columns = list(records[0]) if records else []
    missing = [c for c in ("filepath", "label") if c not in columns]
    if missing:
        raise ConfigError(f"labels {source}: needs 'filepath' and 'label' columns (missing: {', '.join(missing)}; found: {', '.join(columns) or 'none'})")
    if not records:
        raise ConfigError(f"labels {source}: no rows")

    def text(record: Mapping[str, object], key: str) -> Optional[str]:
        value = record.get(key)
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        return None if _null(str(value)) else str(value).strip()

    has_split = "split" in columns
    if has_split:
        splits = [text(r, "split") for r in records]
        if all(s is None for s in splits):
            warnings.warn(LabelsWarning(f"labels {source}: the split column is empty; splits are made with split_proportions"), stacklevel=2)
            has_split = False
        else:
            empty = sum(s is None for s in splits)
            if empty:
                raise ConfigError(
                    f"labels {source}: {empty} row(s) have no split; fill them with train, val or holdout, "
                    "or drop the split column to have splits made with split_proportions"
                )
            invalid = sorted(set(splits) - set(SPLITS))
            if invalid:
                raise ConfigError(f"labels {source}: invalid split value(s) {', '.join(invalid)}; split can only be train, val or holdout")
    has_site = "site" in columns
    rows: list[LabelRow] = []
    no_label = 0
    for record in records:
        label = text(record, "label")
        filepath = text(record, "filepath")
        if label is None:
            no_label += 1
            continue
        if filepath is None:
            raise ConfigError(f"labels {source}: a row with label '{label}' has no filepath")
        joined = str(Path(data_dir) / filepath) if data_dir is not None else filepath
        rows.append(
            LabelRow(
                joined,
                label.lower(),
                text(record, "site") if has_site else None,
                text(record, "split") if has_split else None,
            )
        )
    if not rows:
        raise ConfigError(f"labels {source}: no row has a label")
    if no_label:
        warnings.warn(LabelsWarning(f"labels {source}: {no_label} row(s) with no label left out"), stacklevel=2)
    return LabelsFile(rows, has_split, has_site, source)


def choose_species(
    labels: LabelsFile, model_species: Sequence[str], use_default_model_labels: Optional[bool]
) -> tuple[list[str], bool]:
    """(output species, whether they are the model's own, keeping its head)."""
    return output_species(sorted({row.label for row in labels.rows}), labels.source, model_species, use_default_model_labels)


def output_species(
    given: Sequence[str], source: str, model_species: Sequence[str], use_default_model_labels: Optional[bool]
) -> tuple[list[str], bool]:
    """zamba's rule: the model's own species (its head kept) where the labels' ``given`` classes
    are among them, unless use_default_model_labels is false; else ``given`` (a new head)."""
    outside = sorted(set(given) - set(model_species))
    if outside:
        if use_default_model_labels:
            raise ConfigError(
                f"use_default_model_labels is true but labels {source} has species the model does not "
                f"predict ({', '.join(outside)}); set use_default_model_labels to false to train a new head "
                "for the labels' species"
            )
        return list(given), False
    if use_default_model_labels is False:
        return list(given), False
    return list(model_species), True


def labelled_clips(labels: LabelsFile, species: Sequence[str]) -> LabelledClips:
    """One row per clip (sorted by path), multi-hot over ``species``."""
    index = {name: i for i, name in enumerate(species)}
    by_file: dict[str, list[LabelRow]] = {}
    for row in labels.rows:
        by_file.setdefault(row.filepath, []).append(row)
    filepaths = sorted(by_file)
    targets = np.zeros((len(filepaths), len(species)), dtype=np.int64)
    for i, filepath in enumerate(filepaths):
        for row in by_file[filepath]:
            targets[i, index[row.label]] = 1
    # As pandas' groupby max: the largest value of the file's rows, ignoring empty ones.
    def largest(values: Iterable[Optional[str]]) -> Optional[str]:
        present = [v for v in values if v is not None]
        return max(present) if present else None

    splits = [largest(r.split for r in by_file[f]) for f in filepaths] if labels.has_split else []
    sites = [largest(r.site for r in by_file[f]) for f in filepaths] if labels.has_site else []
    return LabelledClips(filepaths, list(species), targets, splits, sites)


def one_output_if_binary(clips: LabelledClips) -> LabelledClips:
    """Two species where every clip has exactly one: one output (``blank`` if it is one of them),
    as zamba does after splitting, so that a blank_nonblank model can be trained on."""
    species = clips.species
    if len(species) != 2 or not (clips.targets.sum(axis=1) == 1).all():
        return clips
    keep = species.index("blank") if "blank" in species else 0
    warnings.warn(
        LabelsWarning(f"two species and one per clip: trained as one output, {species[keep]} (present or not)"),
        stacklevel=2,
    )
    return LabelledClips(clips.filepaths, [species[keep]], clips.targets[:, [keep]], clips.splits, clips.sites)


def split_seed() -> int:
    return int(os.environ.get("SPLIT_SEED", DEFAULT_SPLIT_SEED))


def species_splits(targets: np.ndarray, species: Sequence[str], proportions: Mapping[str, int], seed: int) -> list[str]:
    """zamba's random split: for each species in turn, its clips (in order) get one of each
    non-empty split, then splits drawn with ``random.choices`` by proportion. A multi-label clip
    keeps the split of its last species."""
    expected = [name for name, weight in proportions.items() if weight > 0]
    counts = targets.sum(axis=0)
    too_few = {name: int(n) for name, n in zip(species, counts) if 0 < n < len(expected)}
    if too_few:
        raise ConfigError(
            f"every species needs at least {len(expected)} clips to fill the splits {', '.join(expected)}; "
            f"found {', '.join(f'{k}: {v}' for k, v in too_few.items())}. Remove these labels, add clips, "
            "or give a split column"
        )
    generator = random.Random(seed)
    splits: list[Optional[str]] = [None] * len(targets)
    for column in range(targets.shape[1]):
        members = np.flatnonzero(targets[:, column] > 0)
        if len(members) == 0:
            continue
        drawn = generator.choices(list(proportions), weights=list(proportions.values()), k=len(members) - len(expected))
        for member, split in zip(members, expected + drawn):
            splits[member] = split
    return [s if s is not None else "train" for s in splits]


def _roundrobin(*iterables: Iterable[str]) -> Iterable[str]:
    iterators = [iter(it) for it in iterables]
    while iterators:
        alive = []
        for it in iterators:
            try:
                yield next(it)
                alive.append(it)
            except StopIteration:
                pass
        iterators = alive


def site_splits(sites: Sequence[Optional[str]], proportions: Mapping[str, int], seed: int = SITE_SPLIT_SEED) -> list[str]:
    """zamba's site-disjoint split: sites by clip count (most first) dealt round-robin to the
    splits by proportion; clips without a site drawn at random by proportion."""
    counts: dict[str, int] = {}
    for site in sites:
        if site is not None:
            counts[site] = counts.get(site, 0) + 1
    ordered = sorted(counts, key=lambda s: -counts[s])  # stable: equal counts in order of appearance
    slots = list(_roundrobin(*([name] * weight for name, weight in proportions.items())))
    assignment: dict[str, str] = {}
    for i, split in enumerate(slots):
        for site in ordered[i :: len(slots)]:
            assignment[site] = split
    missing = [i for i, s in enumerate(sites) if s is None]
    drawn: list[str] = []
    if missing:
        weights = np.asarray(list(proportions.values()), dtype=float)
        picks = np.random.RandomState(seed).choice(len(weights), p=weights / weights.sum(), size=len(missing), replace=True)
        drawn = [list(proportions)[k] for k in picks]
    out = [assignment.get(s, "") if s is not None else "" for s in sites]
    for i, split in zip(missing, drawn):
        out[i] = split
    return out


def split_clips(clips: LabelledClips, proportions: Optional[Mapping[str, int]], has_split: bool) -> LabelledClips:
    """``clips`` with a split for each: the labels' own, else made as zamba makes them."""
    if has_split:
        return clips
    proportions = dict(proportions or {"train": 3, "val": 1, "holdout": 1})
    if clips.sites:
        splits = site_splits(clips.sites, proportions)
    else:
        splits = species_splits(clips.targets, clips.species, proportions, split_seed())
    return LabelledClips(clips.filepaths, clips.species, clips.targets, splits, clips.sites)


def splits_csv(clips: LabelledClips) -> str:
    """``splits.csv`` as zamba writes it: filepath, split."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["filepath", "split"])
    writer.writerows(zip(clips.filepaths, clips.splits))
    return out.getvalue()


