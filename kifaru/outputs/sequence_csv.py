"""Sequence predictions: one row per sequence (a burst: one trigger of a camera), in the layout of
the Hakuna Ma-data benchmark's submission: ``seq_id``, then one column per class (the checkpoint's
order) with the sequence's score, its photos' combined as kifaru.images.sequences says.

A photo counts where the classifier saw it (its crops, or the whole photo): a photo in which the
detector found nothing, or that failed, adds nothing. A sequence none of whose photos was
classified keeps its row with empty cells (nothing was found there; its photos' rows in the
predictions CSV and the failures CSV say which); nothing is invented for it. Rows are sorted by
``seq_id``.
"""

from __future__ import annotations

import csv
import io
from typing import Optional, Sequence

import numpy as np

from kifaru.images.sequences import SEQ_ID_COLUMN, aggregate, photo_scores
from kifaru.outputs import RunDescription, register_writer
from kifaru.runs.records import Record


@register_writer("sequence_csv", "zamba_sequence_predictions.csv", "one row per sequence (burst): seq_id, one score per class")
def sequence_predictions_csv(records: Sequence[Record], run: RunDescription) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([SEQ_ID_COLUMN, *run.species])
    for seq_id, scores in sorted(sequence_scores(records, run).items()):
        writer.writerow([seq_id, *([""] * len(run.species) if scores is None else [str(v) for v in scores.astype(np.float32)])])
    return out.getvalue()


def sequence_scores(records: Sequence[Record], run: RunDescription) -> dict[str, Optional[np.ndarray]]:
    """seq_id -> its scores (one per class), or None where none of its photos was classified."""
    if run.sequences is None:
        raise ValueError("sequence predictions need the run's sequences (sequences: true, or a seq_id column)")
    by_name = {record.item: record for record in records}
    scores: dict[str, Optional[np.ndarray]] = {}
    for seq_id, names in run.sequences.sequences().items():
        seen = [evidence for evidence in (photo_evidence(by_name[n], run.species) for n in names if n in by_name) if evidence is not None]
        if not seen:
            scores[seq_id] = None
            continue
        rows, weights = zip(*seen)
        scores[seq_id] = aggregate(rows, run.species, run.aggregation, weights)
    return scores


def photo_evidence(record: Record, species: Sequence[str]) -> Optional[tuple[np.ndarray, float]]:
    """A classified photo's scores and its weight in a weighted mean (its most confident
    detection; 1 for a photo classified whole), or None where the classifier did not see it."""
    crops = [crop for crop in record.outputs.get("crops") or [] if crop.get("probabilities")]
    if record.failed or not crops:
        return None
    weight = max(1.0 if crop.get("conf") is None else float(crop["conf"]) for crop in crops)
    return photo_scores([crop["probabilities"] for crop in crops], species), weight
