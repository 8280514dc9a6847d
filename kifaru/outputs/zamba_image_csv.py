"""zamba's image predictions CSV (``zamba image predict``, pandas' ``to_csv(index=False)``):
``filepath, detection_category, detection_conf, x1, y1, x2, y2`` (the crop in pixels), then one
column per species (checkpoint order) with the crop's softmax probabilities as numpy prints a
float32. One row per crop, rows in the photos' order (zamba's: sorted by path).

kifaru also writes a row for a photo zamba would leave out: with ``crop_images: false`` the whole
photo (``0, 0, width, height``, no category or confidence), and for a photo in which nothing
reaches ``detections_threshold`` a row with only its filepath (nothing found, nothing classified).
Photos that could not be used are in the failures CSV. With sequences (bursts), each row carries
its photo's ``seq_id`` after ``filepath``."""

from __future__ import annotations

import csv
import io
from typing import Sequence

import numpy as np

from kifaru.images.sequences import SEQ_ID_COLUMN
from kifaru.outputs import RunDescription, register_writer
from kifaru.runs.records import Record

COLUMNS = ["filepath", "detection_category", "detection_conf", "x1", "y1", "x2", "y2"]


@register_writer("zamba_image_csv", "zamba_predictions.csv", "zamba's image predictions CSV: one row per crop (or photo), one column per species")
def image_predictions_csv(records: Sequence[Record], run: RunDescription) -> str:
    species = list(run.species)
    seq_ids = run.sequences.seq_ids if run.sequences is not None else None
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([COLUMNS[0], *([SEQ_ID_COLUMN] if seq_ids is not None else []), *COLUMNS[1:], *species])
    for record in records:
        if record.failed:
            continue
        photo = [record.item, *([seq_ids.get(record.item, "")] if seq_ids is not None else [])]
        crops = record.outputs.get("crops") or []
        if not crops:
            writer.writerow([*photo, *[""] * (len(COLUMNS) - 1 + len(species))])
        for crop in crops:
            conf = crop.get("conf")
            probabilities = [str(v) for v in np.asarray(crop.get("probabilities") or [], dtype=np.float32)]
            writer.writerow([*photo, crop.get("category") or "", "" if conf is None else round(conf, 3), *crop["box"], *probabilities])
    return out.getvalue()
