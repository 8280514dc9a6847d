"""zamba's ``zamba_predictions.csv``, byte for byte as zamba writes it (pandas' ``to_csv`` of its
table): ``filepath`` then one column per species (checkpoint order), probabilities to 5 decimals,
or 0/1 with ``proba_threshold``, or the most likely class with ``output_class_names``. Files
without a prediction are not in it (they are in the failures CSV). In fast mode, a last column,
``decided_by`` (docs/fast-mode.md)."""

from __future__ import annotations

import csv
import io
from typing import Sequence

import numpy as np

from kifaru.outputs import RunDescription, register_writer
from kifaru.runs.records import Record

PREDICTIONS_CSV = "zamba_predictions.csv"
DECIDED_BY = "decided_by"  # fast mode's column: "classifier", or "detector" where its screen found no animal


@register_writer("zamba_csv", PREDICTIONS_CSV, "zamba's predictions CSV: one row per clip, one column per species")
def predictions_csv(records: Sequence[Record], run: RunDescription) -> str:
    config = run.predict_config
    species = list(run.species)
    predicted = [r for r in records if not r.failed]
    # Fast mode: a last column says who decided each row; a clip its screen called empty has no
    # classifier output, and its cells stay empty rather than hold numbers nobody computed.
    fast = getattr(config, "preset", "exact") == "fast"
    decided_by = [DECIDED_BY] if fast else []
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")

    def row(record: Record, values: list) -> list:
        return [record.item, *values, *([record.outputs.get("decided_by", "classifier")] if fast else [])]

    if config.proba_threshold is None and config.output_class_names:
        writer.writerow(["filepath", "0", *decided_by])  # zamba writes idxmax's unnamed Series
        for record in predicted:
            top = [species[int(np.argmax(record.probabilities))]] if record.probabilities is not None else [""]
            writer.writerow(row(record, top))
        return out.getvalue()
    writer.writerow(["filepath", *species, *decided_by])
    for record in predicted:
        if record.probabilities is None:
            writer.writerow(row(record, [""] * len(species)))
            continue
        probabilities = np.asarray(record.probabilities, dtype=np.float32)
        if config.proba_threshold is not None:
            values = [int(p > config.proba_threshold) for p in probabilities]
        else:
            # float32 rounded to 5 places, printed as numpy prints float32 (pandas does the same)
            values = [str(v) for v in np.round(probabilities, 5)]
        writer.writerow(row(record, values))
    return out.getvalue()
