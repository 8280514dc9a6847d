"""``filepath, stage, reason`` for every input file that has no result, and why."""

from __future__ import annotations

import csv
import io
from typing import Sequence

from kifaru.outputs import RunDescription, register_writer
from kifaru.runs.records import Record

FAILURES_CSV = "zamba_predictions_failures.csv"


@register_writer("failures_csv", FAILURES_CSV, "one row per file without a result: its stage and reason")
def failures_csv(records: Sequence[Record], run: RunDescription) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["filepath", "stage", "reason"])
    for record in records:
        if record.failed:
            writer.writerow([record.item, record.stage, record.reason])
    return out.getvalue()
