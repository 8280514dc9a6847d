"""``segments.csv``: one row per time segment of a clip, an interval in which one animal is seen
(kifaru.segments): its start and end in seconds, its species and probability, the detector's
highest confidence in it and its box at that frame (relative x1, y1, x2, y2), and where its
species comes from (``crops``: the image classifier's on its own boxes; ``clip``: the clip's)."""

from __future__ import annotations

import csv
import io
from typing import Sequence

from kifaru.outputs import RunDescription, register_writer
from kifaru.runs.records import MEDIA_VIDEO, Record
from kifaru.segments.segments import record_segments

SEGMENTS_CSV = "segments.csv"
SEGMENTS_COLUMNS = (
    "filepath", "segment", "start_s", "end_s", "species", "probability", "max_detection_confidence",
    "best_frame_number", "x1", "y1", "x2", "y2", "species_from",
)  # fmt: skip


@register_writer("segments_csv", SEGMENTS_CSV, "one row per interval in which an animal is seen in a clip (start, end, species, box)")
def segments_csv(records: Sequence[Record], run: RunDescription) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SEGMENTS_COLUMNS)
    threshold = run.animal_threshold()
    if threshold is None:  # no detector scored the frames: no boxes to link
        return out.getvalue()
    for record in records:
        if record.failed or record.media != MEDIA_VIDEO:
            continue
        for s in record_segments(record, run, threshold):
            writer.writerow([
                s.filepath, s.segment, round(s.start, 3), round(s.end, 3), s.species or "",
                "" if s.probability is None else round(s.probability, 4), round(s.max_detection_confidence, 4),
                s.best_frame_number, *(round(v, 4) for v in s.best_box), s.species_from if s.species else "",
            ])  # fmt: skip
    return out.getvalue()
