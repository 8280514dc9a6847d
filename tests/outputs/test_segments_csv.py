"""segments.csv: one row per interval an animal is seen in, from the records' scored frames."""

from __future__ import annotations

import csv
import io

from kifaru.config.video import VideoLoaderConfig
from kifaru.outputs import RunDescription, get_writer
from kifaru.runs.records import MEDIA_IMAGE, STAGE_DECODE, Record


def _frames(spans: list[tuple[int, int]], score: float = 0.9) -> list[dict]:
    """One scored frame a second for 12 s; an animal box in the seconds of each (first, last) span."""
    return [
        {"frame_number": t * 30, "time": float(t), "detections": [[0.1, 0.2, 0.4, 0.6, score]] if any(a <= t <= b for a, b in spans) else []}
        for t in range(12)
    ]


def _rows(records, run) -> list[dict]:
    return list(csv.DictReader(io.StringIO(get_writer("segments_csv").render(records, run))))


def test_rows_per_segment_with_the_clip_s_species():
    records = [
        Record("two_visits.mp4", frames=_frames([(1, 3), (8, 10)]), outputs={"probabilities": [0.7, 0.1, 0.2]}),
        Record("empty.mp4", frames=_frames([])),
        Record("weak.mp4", frames=_frames([(2, 5)], score=0.3)),
        Record.failure("broken.mp4", STAGE_DECODE, "not a video"),
        Record("photo.jpg", media=MEDIA_IMAGE, frames=_frames([(0, 0)])),
    ]
    loader = VideoLoaderConfig(megadetector_lite_config={"confidence": 0.25})
    run = RunDescription("predict", loader_config=loader, species=["blank", "lion", "zebra"])
    assert run.animal_threshold() == 0.25  # frame selection's confidence: weak.mp4's 0.3 counts
    assert RunDescription("predict", loader_config=VideoLoaderConfig()).animal_threshold() is None  # no detector: no segments
    rows = _rows(records, run)
    assert [(r["filepath"], r["segment"], r["start_s"], r["end_s"], r["species"], r["probability"]) for r in rows] == [
        ("two_visits.mp4", "1", "1.0", "3.0", "zebra", "0.2"),
        ("two_visits.mp4", "2", "8.0", "10.0", "zebra", "0.2"),
        ("weak.mp4", "1", "2.0", "5.0", "", ""),
    ]
    assert [rows[0][k] for k in ("max_detection_confidence", "best_frame_number", "x1", "y1", "x2", "y2")] == ["0.9", "30", "0.1", "0.2", "0.4", "0.6"]
    # detect's threshold decides what an animal is.
    assert [r["filepath"] for r in _rows(records, RunDescription("detect", threshold=0.5))] == ["two_visits.mp4", "two_visits.mp4"]
