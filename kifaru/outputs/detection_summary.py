"""``detection_summary.csv``: one row per file: animal or blank at the threshold, the highest
confidence, frames with an animal, first and last time one is seen, and its notes."""

from __future__ import annotations

import csv
import io
from typing import Any, Sequence

from kifaru.outputs import RunDescription, register_writer
from kifaru.runs.records import MEDIA_VIDEO, Record

SUMMARY_CSV = "detection_summary.csv"
SUMMARY_COLUMNS = (
    "filepath",
    "media",
    "result",
    "max_confidence",
    "frames_processed",
    "frames_with_animal",
    "first_animal_s",
    "last_animal_s",
    "failure",
    "note",
)


def summary_row(record: Record, threshold: float) -> dict[str, Any]:
    note = "; ".join(record.notes)
    if record.failed:
        return {"filepath": record.item, "media": record.media, "result": "failed", "failure": record.reason, "note": note}
    animal = record.animal_frames(threshold)
    times = [f["time"] for f in animal]
    video = record.media == MEDIA_VIDEO
    return {
        "filepath": record.item,
        "media": record.media,
        "result": "animal" if animal else "blank",
        "max_confidence": round(record.max_confidence(), 4),
        "frames_processed": len(record.frames),
        "frames_with_animal": len(animal),
        "first_animal_s": round(min(times), 3) if times and video else "",
        "last_animal_s": round(max(times), 3) if times and video else "",
        "failure": "",
        "note": note,
    }


@register_writer("detection_summary", SUMMARY_CSV, "one row per file: animal or blank, confidence, when the animal is seen")
def summary_csv(records: Sequence[Record], run: RunDescription) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=SUMMARY_COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    for record in records:
        writer.writerow(summary_row(record, run.threshold))
    return out.getvalue()
