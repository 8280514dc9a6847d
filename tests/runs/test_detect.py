"""``kifaru.runs.detect``: many files through a stand-in detector, MegaDetector JSON and summary CSV,
failures recorded without stopping, and resuming an interrupted run.

Every clip shows its own range of frame indices (tests.media), so the stand-in detector's scores
pick exact frames and what it was called with tells which files it saw.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import re
import shutil
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import kifaru.models.registry
from kifaru.config import VideoLoaderConfig
from kifaru.runs.detect import (
    DETECTIONS_JSON,
    FILENAMES,
    PROGRESS_FILE,
    SUMMARY_CSV,
    WRITERS,
    default_detect_config,
    detect_files,
)
from kifaru.exceptions import ConfigError, Interrupted
from kifaru.outputs.detection_summary import SUMMARY_COLUMNS
from kifaru.outputs.results_file import RESULTS_FILE
from kifaru.outputs.segments_csv import SEGMENTS_CSV
from kifaru.models.registry import MEGADETECTOR_LITE
from kifaru.outputs import write_outputs
from kifaru.runs.records import Record
from kifaru.video.loader import KEPT_BOX_THRESHOLD
from tests.detection.fakes import IndexScoringDetector
from tests.detection.md_format import assert_valid_md_batch, md_batch_errors
from tests.media import BAND_ROWS, index_frame, make_audio_only, make_clip

# a.mp4 shows 0-29 (10 fps, 3 s), b.mp4 100-129 (10 fps, 3 s), sub/c.mov 200-219 (5 fps, 4 s),
# photo.jpg 50. At 1 fps the detector sees a: 0, 10, 20; b: 100, 110, 120; c: 200, 205, 210, 215.
# 110 (0.2) is below the threshold but above the kept-box threshold (0.05): in detections.json,
# blank in the summary; 120 (0.04) is below both: the detector is not asked for it.
SCORES = {10: 0.9, 20: 0.3, 110: 0.2, 120: 0.04, 215: 0.6, 50: 0.8}
DURATIONS = {"a.mp4": 3.0, "b.mp4": 3.0, "c.mov": 4.0}
RATES = {"a.mp4": 10.0, "b.mp4": 10.0, "c.mov": 5.0}
BAD = {  # name -> (failure stage, words its failure reason must have)
    "empty.mp4": ("decode", "empty"),
    "noise.mp4": ("decode", "cannot be opened"),
    "notes.avi": ("decode", "cannot be opened"),
    "x.mp4": ("file", "a folder, not a video file"),
    "birdsong.mp4": ("decode", "no video stream"),
    "gone.mp4": ("file", "no such file"),
    "._a.mp4": ("file", "macOS metadata file"),
    "broken.jpg": ("decode", "not an image"),
}
# What cannot be a media file at all gets its failure record without being opened; there is no
# file to fingerprint, so it is not resumed from the progress file but checked again on every run.
UNREADABLE = [name for name, (stage, _) in BAD.items() if stage == "file"]
# The order files are given in: failures between good files, so the run must go on after each.
ORDER = ["a.mp4", "empty.mp4", "noise.mp4", "b.mp4", "notes.avi", "x.mp4", "birdsong.mp4", "gone.mp4", "._a.mp4", "broken.jpg", "sub/c.mov", "photo.jpg"]


def make_media(folder: Path) -> list[Path]:
    """The files of ORDER under ``folder`` (gone.mp4 is listed but never made)."""
    make_clip(folder / "a.mp4")
    make_clip(folder / "b.mp4", frames=[index_frame(100 + i) for i in range(30)])
    make_clip(folder / "sub" / "c.mov", fps=5, frames=[index_frame(200 + i) for i in range(20)])
    Image.fromarray(index_frame(50)).save(folder / "photo.jpg", quality=95)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    (folder / "notes.avi").write_text("field notes, not a video\n" * 50)
    (folder / "x.mp4").mkdir()
    make_audio_only(folder / "birdsong.mp4")
    # What macOS leaves beside a file copied to a FAT/exFAT card: AppleDouble metadata (its magic
    # number), named like a video.
    (folder / "._a.mp4").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00" + b"Mac OS X        " + bytes(4000))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"not a picture" * 50)
    return [folder / name for name in ORDER]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> list[Path]:
    """Read-only inputs shared by the tests that do not change them."""
    return make_media(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="module")
def done(media, tmp_path_factory):
    """One run over ``media`` with the defaults, shared by the tests that only read its results."""
    out = tmp_path_factory.mktemp("out")
    seen = []
    report, detector = run(media, out, progress=lambda record, n, total: seen.append((Path(record.item).name, n, total)))
    return SimpleNamespace(report=report, detector=detector, out=out, progress=seen)


@pytest.fixture
def fresh_media(media, tmp_path) -> list[Path]:
    """Inputs of this test only (for tests that change them): a copy of ``media``."""
    shutil.copytree(media[0].parent, tmp_path / "media")
    return [tmp_path / "media" / name for name in ORDER]


def run(files, out, *, detector=None, **kwargs):
    detector = detector if detector is not None else IndexScoringDetector(SCORES)
    kwargs.setdefault("relative_to", files[0].parent)
    return detect_files(files, out, detector=detector, **kwargs), detector


def read_json(out: Path) -> dict:
    return json.loads((out / DETECTIONS_JSON).read_text(encoding="utf-8"))


def read_csv(out: Path) -> list[dict]:
    with open(out / SUMMARY_CSV, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def by_name(rows, key="filepath"):
    return {Path(row[key]).name: row for row in rows}


def files_seen(detector: IndexScoringDetector) -> list[str]:
    """Which good file each detector call was for (from the indices its frames show)."""
    names = {0: "a.mp4", 1: "b.mp4", 2: "c.mov"}
    seen = []
    for indices in detector.indices_seen():
        seen.append("photo.jpg" if indices == [50] else names[indices[0] // 100])
    return seen


def comparable(out: Path) -> tuple[dict, str]:
    data = read_json(out)
    del data["info"]["detection_completion_time"]
    return data, (out / SUMMARY_CSV).read_text(encoding="utf-8")


def in_input_order(names, files) -> list[str]:
    """``names`` (files as the run names them) in the order ``files`` were given."""
    names = set(names)
    return [str(f) for f in files if str(f) in names]


# -- every file gets one record ------------------------------------------------------------------


def test_every_input_gets_exactly_one_record_and_failures_do_not_stop_the_run(media, done):
    report, detector, out = done.report, done.detector, done.out
    assert [r.item for r in report.records] == [str(p) for p in media]
    assert files_seen(detector) == ["a.mp4", "b.mp4", "c.mov", "photo.jpg"]
    for record in report.records:
        name = Path(record.item).name
        if name in BAD:
            stage, words = BAD[name]
            assert record.failed and record.status == "failed", name
            assert record.stage == stage, (name, record.stage, record.reason)
            assert words in record.reason, (name, record.reason)  # says why ...
            # ... without the path: the record's item says which file it is.
            assert not record.reason.startswith(str(media[ORDER.index(name)])), record.reason
            assert record.frames == [] and record.frame_rate is None
        else:
            assert not record.failed and record.stage is None and record.reason is None, record.reason
    assert {Path(r.item).name for r in report.failed} == set(BAD)
    assert report.skipped == 0
    assert report.outputs == {
        "detections": out / DETECTIONS_JSON, "summary": out / SUMMARY_CSV, "segments": out / SEGMENTS_CSV, "results": out / RESULTS_FILE,
    }  # fmt: skip
    assert len(read_json(out)["images"]) == len(read_csv(out)) == len(media)
    # Each clip with an animal has its intervals, within the span its animal frames cover.
    segments = list(csv.DictReader(open(out / SEGMENTS_CSV)))
    summary = {Path(row["filepath"]).name: row for row in read_csv(out)}
    for row in segments:
        seen = summary[Path(row["filepath"]).name]
        assert seen["result"] == "animal" and float(seen["first_animal_s"]) <= float(row["start_s"]) <= float(row["end_s"]) <= float(seen["last_animal_s"])
    animals = {name for name, row in summary.items() if row["result"] == "animal" and row["media"] == "video"}
    assert animals and {Path(row["filepath"]).name for row in segments} == animals


def test_files_that_cannot_be_media_are_never_opened(media, tmp_path):
    """A folder, a missing file, a macOS '._' file: failure records of stage "file", without the
    detector or a decoder seeing them (a run of only those calls the detector never)."""
    unreadable = [media[ORDER.index(name)] for name in UNREADABLE]
    report, detector = run(unreadable, tmp_path / "out")
    assert detector.calls == []
    assert [(Path(r.item).name, r.stage, r.reason) for r in report.records] == [
        ("x.mp4", "file", "a folder, not a video file"),
        ("gone.mp4", "file", "no such file"),
        ("._a.mp4", "file", "a macOS metadata file (the '._' companion of a copied file), not a video"),
    ]
    assert [e["failure"] for e in read_json(tmp_path / "out")["images"]] == [r.reason for r in report.records]


def test_media_kinds_frame_rates_and_sampled_frames(done):
    records = {Path(r.item).name: r for r in done.report.records}
    assert records["photo.jpg"].media == "image" and records["photo.jpg"].frame_rate is None
    assert [f["frame_number"] for f in records["photo.jpg"].frames] == [0]
    assert all(records[name].media == "video" for name in BAD if name != "broken.jpg")
    assert records["broken.jpg"].media == "image"  # a failed image is still an image
    assert [f["frame_number"] for f in records["a.mp4"].frames] == [0, 10, 20]
    assert [f["time"] for f in records["a.mp4"].frames] == [0.0, 1.0, 2.0]
    assert [f["frame_number"] for f in records["c.mov"].frames] == [0, 5, 10, 15]
    assert records["a.mp4"].frame_rate == pytest.approx(10.0) and records["c.mov"].frame_rate == pytest.approx(5.0)
    # A detection: the stand-in's box and the frame's score.
    assert records["a.mp4"].frames[1]["detections"] == [[0.1, 0.1, 0.5, 0.5, 0.9]]
    assert records["a.mp4"].frames[0]["detections"] == []


@pytest.mark.parametrize("fps", [0.5, 1.0, 2.0])
def test_frames_processed_are_the_frames_sampled_at_the_configured_fps(media, tmp_path, fps):
    videos = [media[ORDER.index(name)] for name in ("a.mp4", "b.mp4", "sub/c.mov", "photo.jpg")]
    report, detector = run(videos, tmp_path / "out", video_loader_config=default_detect_config(fps=fps))
    rows = by_name(read_csv(tmp_path / "out"))
    entries = {Path(e["file"]).name: e for e in read_json(tmp_path / "out")["images"]}
    for name, duration in DURATIONS.items():
        expected = math.ceil(duration * fps)
        record = next(r for r in report.records if r.item.endswith(name))
        assert len(record.frames) == expected, name
        assert int(rows[name]["frames_processed"]) == expected
        assert entries[name]["frames_processed"] == [f["frame_number"] for f in record.frames]
        # The k-th sampled frame is the one showing at k / fps seconds: the last to start at or
        # before it (c.mov at fps=2: frames 0, 2, 5, 7, ...), with that frame's own time.
        for k, frame in enumerate(record.frames):
            assert frame["frame_number"] == math.floor(Fraction(k) / Fraction(fps) * Fraction(RATES[name])), (name, k)
            assert frame["time"] == pytest.approx(frame["frame_number"] / RATES[name], abs=1e-9)
    assert report.records[-1].frames[0]["frame_number"] == 0  # a still image is one frame at any fps
    assert read_json(tmp_path / "out")["info"]["custom_metadata"]["frame_sampling"]["fps"] == fps


# -- boxes kept down to the kept-box threshold ---------------------------------------------------


@pytest.mark.parametrize(("confidence", "asked"), [(0.25, KEPT_BOX_THRESHOLD), (0.5, KEPT_BOX_THRESHOLD), (0.02, 0.02)])
def test_boxes_are_kept_down_to_the_kept_box_threshold_whatever_the_confidence(media, tmp_path, confidence, asked):
    """The detector is asked for boxes down to min(confidence, 0.05), so that Timelapse users can
    explore thresholds; the summary's animal or blank is still at ``threshold``."""
    b = media[ORDER.index("b.mp4")]
    report, detector = run([b], tmp_path / "out", video_loader_config=default_detect_config(confidence=confidence))
    assert detector.calls and {call["confidence"] for call in detector.calls} == {asked}
    # 110 scores 0.2 (kept at any of these), 120 scores 0.04 (only when the detector is asked for it).
    kept = {10: 0.2, 20: 0.04} if asked <= 0.04 else {10: 0.2}
    (record,) = report.records
    assert {f["frame_number"]: f["detections"][0][4] for f in record.frames if f["detections"]} == kept
    data = read_json(tmp_path / "out")
    assert_valid_md_batch(data)
    assert {d["frame_number"]: d["conf"] for d in data["images"][0]["detections"]} == kept
    assert data["info"]["custom_metadata"]["detector_settings"]["boxes_kept_down_to"] == asked
    # The lower of the summary's threshold (0.25) and the confidence.
    assert data["info"]["detector_metadata"]["conservative_detection_threshold"] == min(0.25, confidence)
    (row,) = read_csv(tmp_path / "out")
    assert (row["result"], row["max_confidence"], row["frames_with_animal"]) == ("blank", "0.2", "0")  # threshold 0.25


# -- summary CSV -----------------------------------------------------------------------------------


def test_summary_csv_columns_and_values(media, done):
    text = (done.out / SUMMARY_CSV).read_text(encoding="utf-8")
    assert text.splitlines()[0].split(",") == list(SUMMARY_COLUMNS)
    rows = read_csv(done.out)
    assert [row["filepath"] for row in rows] == [str(p) for p in media]
    rows = by_name(rows)
    assert rows["a.mp4"] == {
        "filepath": str(media[0]),
        "media": "video",
        "result": "animal",
        "max_confidence": "0.9",
        "frames_processed": "3",
        "frames_with_animal": "2",  # 10 (0.9) and 20 (0.3)
        "first_animal_s": "1.0",
        "last_animal_s": "2.0",
        "failure": "",
        "note": "",
    }
    b = rows["b.mp4"]  # 110 scores 0.2: below the threshold (its box is still in detections.json)
    assert (b["result"], b["max_confidence"], b["frames_with_animal"], b["first_animal_s"], b["last_animal_s"]) == ("blank", "0.2", "0", "", "")
    c = rows["c.mov"]  # 215 is the 4th frame sampled at 1 fps: 3 s
    assert (c["result"], c["frames_processed"], c["frames_with_animal"], c["first_animal_s"], c["last_animal_s"]) == ("animal", "4", "1", "3.0", "3.0")
    photo = rows["photo.jpg"]  # images have no times
    assert (photo["media"], photo["result"], photo["max_confidence"], photo["frames_processed"], photo["first_animal_s"]) == ("image", "animal", "0.8", "1", "")
    reasons = {Path(r.item).name: r.reason for r in done.report.records}
    for name, (_, words) in BAD.items():
        row = rows[name]
        # The failure column holds the reason; the filepath column already names the file.
        assert row["result"] == "failed" and row["failure"] == reasons[name] and words in row["failure"]
        assert all(row[column] == "" for column in ("max_confidence", "frames_processed", "frames_with_animal", "first_animal_s", "last_animal_s"))


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (0.2, {"a.mp4": ("animal", "2", "1.0", "2.0"), "b.mp4": ("animal", "1", "1.0", "1.0"), "c.mov": ("animal", "1", "3.0", "3.0"), "photo.jpg": ("animal", "1", "", "")}),
        (0.5, {"a.mp4": ("animal", "1", "1.0", "1.0"), "b.mp4": ("blank", "0", "", ""), "c.mov": ("animal", "1", "3.0", "3.0"), "photo.jpg": ("animal", "1", "", "")}),
        (0.9, {"a.mp4": ("animal", "1", "1.0", "1.0"), "b.mp4": ("blank", "0", "", ""), "c.mov": ("blank", "0", "", ""), "photo.jpg": ("blank", "0", "", "")}),
        (0.95, {"a.mp4": ("blank", "0", "", ""), "b.mp4": ("blank", "0", "", ""), "c.mov": ("blank", "0", "", ""), "photo.jpg": ("blank", "0", "", "")}),
    ],
)
def test_animal_or_blank_at_the_threshold(done, tmp_path, threshold, expected):
    # A box at exactly the threshold counts (0.2 and 0.9 are stand-in scores). The outputs are
    # written again from the records, as a rerun with another threshold does.
    (tmp_path / "out").mkdir()
    again = replace(done.report.run, threshold=threshold)
    write_outputs(tmp_path / "out", WRITERS, done.report.records, again.description(), FILENAMES)
    rows = by_name(read_csv(tmp_path / "out"))
    got = {name: (rows[name]["result"], rows[name]["frames_with_animal"], rows[name]["first_animal_s"], rows[name]["last_animal_s"]) for name in expected}
    assert got == expected
    data = read_json(tmp_path / "out")
    assert data["info"]["detector_metadata"]["typical_detection_threshold"] == threshold
    # The boxes in detections.json do not depend on the threshold: kept down to 0.05.
    assert data["images"] == read_json(done.out)["images"]


def test_a_bad_threshold_or_config_is_refused_before_any_work(media, tmp_path):
    detector = IndexScoringDetector(SCORES)
    with pytest.raises(ConfigError, match="threshold 1.5"):
        detect_files(media, tmp_path / "out", threshold=1.5, detector=detector)
    with pytest.raises(ConfigError, match="megadetector_lite_config"):
        detect_files(media, tmp_path / "out", video_loader_config=VideoLoaderConfig(fps=1), detector=detector)
    assert detector.calls == [] and not (tmp_path / "out").exists()


def test_a_truncated_clip_is_flagged_in_every_output(tmp_path):
    """A clip cut short (a card pulled while the camera was writing) gives the frames that are
    there, and says so: in the record, the summary's note column, detections.json and the
    progress file, as predict does."""
    whole = make_clip(tmp_path / "whole.avi", codec="mjpeg", frames=[index_frame(10 + i) for i in range(30)])
    cut = tmp_path / "media" / "cut.avi"
    cut.parent.mkdir()
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 3 // 10])  # under 10 of the 30 frames remain
    fine = make_clip(tmp_path / "media" / "fine.mp4")
    report, _ = run([cut, fine], tmp_path / "out")
    record, good = report.records
    assert [f["frame_number"] for f in record.frames] == [0] and not record.failed
    assert len(record.notes) == 1 and good.notes == []
    note = record.notes[0]
    kept = re.search(r"the header announces 30 frames but only (\d+) are in the file \(truncated\?\)", note)
    assert kept and 0 < int(kept[1]) < 10, note
    assert str(cut) not in note  # the row or entry already names the file

    rows = by_name(read_csv(tmp_path / "out"))
    assert rows["cut.avi"]["result"] == "animal" and rows["cut.avi"]["note"] == note
    assert rows["fine.mp4"]["note"] == ""
    data = read_json(tmp_path / "out")
    assert_valid_md_batch(data)
    entries = {e["file"]: e for e in data["images"]}
    assert entries["cut.avi"]["notes"] == [note] and "notes" not in entries["fine.mp4"]
    assert [Record.from_json(item).notes for item in progress_lines(tmp_path / "out")[1:]] == [[note], []]


# -- MegaDetector JSON ---------------------------------------------------------------------------


def test_json_passes_the_megadetector_validator_checks(media, done):
    data = read_json(done.out)
    assert_valid_md_batch(data)
    assert data["info"]["format_version"] == "1.6"
    assert set(data) == {"info", "detection_categories", "images"}
    assert data["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}  # MegaDetector's map
    assert data["info"]["detector_metadata"]["conservative_detection_threshold"] == 0.25
    assert len(data["images"]) == len(media)


def test_json_entries_for_videos_images_and_failures(media, done, tmp_path):
    entries = {e["file"]: e for e in read_json(done.out)["images"]}
    # Paths relative to relative_to, forward slashes, in the order given.
    assert list(entries) == ORDER
    a = entries["a.mp4"]
    assert a["frame_rate"] == 10.0 and a["frames_processed"] == [0, 10, 20]
    assert a["detections"] == [
        {"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.4, 0.4], "frame_number": 10},
        {"category": "1", "conf": 0.3, "bbox": [0.1, 0.1, 0.4, 0.4], "frame_number": 20},
    ]
    # Below the threshold, above the kept-box threshold: there for Timelapse's threshold slider.
    assert entries["b.mp4"]["detections"] == [{"category": "1", "conf": 0.2, "bbox": [0.1, 0.1, 0.4, 0.4], "frame_number": 10}]
    assert entries["sub/c.mov"]["frames_processed"] == [0, 5, 10, 15]
    assert [d["frame_number"] for d in entries["sub/c.mov"]["detections"]] == [15]
    assert entries["photo.jpg"] == {"file": "photo.jpg", "detections": [{"category": "1", "conf": 0.8, "bbox": [0.1, 0.1, 0.4, 0.4]}]}
    reasons = {Path(r.item).name: r.reason for r in done.report.records}
    for name, (_, words) in BAD.items():
        entry = entries[name]
        # The failure is the record's reason; "file" says which file it is.
        assert entry["failure"] == reasons[name] and words in entry["failure"] and entry["detections"] is None
        if name.endswith(".jpg"):  # images never carry the video fields, failed or not
            assert set(entry) == {"file", "failure", "detections"}
        else:
            assert entry["frame_rate"] == -1.0 and entry["frames_processed"] == []
            assert set(entry) == {"file", "frame_rate", "frames_processed", "failure", "detections"}
    # A video where nothing was found has an empty list, not a missing field.
    blank = run([media[0]], tmp_path / "blank", detector=IndexScoringDetector({}))[0]
    assert read_json(tmp_path / "blank")["images"] == [{"file": "a.mp4", "frame_rate": 10.0, "frames_processed": [0, 10, 20], "detections": []}]
    assert not blank.records[0].failed


def paths_in(out: Path) -> tuple[list[str], str]:
    data = read_json(out)
    return [e["file"] for e in data["images"]], data["info"]["custom_metadata"]["paths_relative_to"]


def test_json_paths_are_relative_to_relative_to_else_the_data_folder_else_the_files_common_folder(media, tmp_path):
    """Timelapse matches entries to files by their path under its root folder (an absolute path
    matches nothing, silently): paths are always relative, and info says to what."""
    folder = media[0].parent
    a, c, photo = media[0], media[ORDER.index("sub/c.mov")], media[-1]
    # relative_to: the folder given.
    run([c], tmp_path / "given", relative_to=folder)
    assert paths_in(tmp_path / "given") == (["sub/c.mov"], str(folder))
    # Without it: data_dir, when every file is under it ...
    run([c], tmp_path / "data_dir", relative_to=None, data_dir=folder)
    assert paths_in(tmp_path / "data_dir") == (["sub/c.mov"], str(folder))
    # ... else the deepest folder holding every file.
    run([a, c], tmp_path / "outside_data_dir", relative_to=None, data_dir=c.parent)
    assert paths_in(tmp_path / "outside_data_dir") == (["a.mp4", "sub/c.mov"], str(folder))
    run([a, photo], tmp_path / "common", relative_to=None)
    assert paths_in(tmp_path / "common") == (["a.mp4", "photo.jpg"], str(folder))
    run([c], tmp_path / "one", relative_to=None)
    assert paths_in(tmp_path / "one") == (["c.mov"], str(c.parent))


def test_a_file_outside_relative_to_is_refused_before_the_run_naming_it(media, tmp_path):
    c = media[ORDER.index("sub/c.mov")]
    detector = IndexScoringDetector(SCORES)
    with pytest.raises(ConfigError, match=rf"{re.escape(str(media[0]))} is not under it \(1 of 2 files are not\)"):
        run([media[0], c], tmp_path / "out", relative_to=c.parent, detector=detector)
    assert detector.calls == [] and not (tmp_path / "out").exists()


def test_json_relative_to_a_relative_folder(media, tmp_path, monkeypatch):
    monkeypatch.chdir(media[0].parent)
    run([Path("a.mp4"), Path("sub") / "c.mov"], tmp_path / "out", relative_to=Path("."))
    # Resolved against the working folder.
    assert paths_in(tmp_path / "out") == (["a.mp4", "sub/c.mov"], str(media[0].parent.resolve()))


def test_scores_are_rounded_and_boxes_clipped_to_the_frame(media, tmp_path):
    detector = IndexScoringDetector({10: 0.123456789}, box=(-0.05, 0.2, 1.3, 0.612345678))
    run(media[:1], tmp_path / "out", detector=detector)
    data = read_json(tmp_path / "out")
    assert_valid_md_batch(data)
    (detection,) = data["images"][0]["detections"]
    assert detection["conf"] == 0.123
    assert detection["bbox"] == [0.0, 0.2, 1.0, 0.4123]


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: d["images"][0]["detections"][0].update(conf=1), "not a float"),
        (lambda d: d["images"][0].pop("frames_processed"), "frames_processed"),
        (lambda d: d["images"][2].pop("frame_rate"), "frame_rate"),
        (lambda d: d["images"][0]["detections"][0].pop("frame_number"), "frame_number"),
        (lambda d: d["images"][0].update(frame_rate=-1.0), "negative frame_rate"),
        (lambda d: d["images"][2].update(detections=[]), "non-null detections"),
        (lambda d: d["info"].update(format_version=1.6), "must be a str"),
        (lambda d: d["images"][0]["detections"][0].update(category="7"), "not in detection_categories"),
        (lambda d: d["images"][0]["detections"][0].update(frame_number=3), "not in frames_processed"),
        (lambda d: d["images"][0]["detections"][0].update(bbox=[0.5, 0.5, 0.9, 0.9]), "past the frame"),
        (lambda d: d["images"][0].update(frames_processed=[10, 0, 20]), "sorted"),
        (lambda d: d["images"][1].update(frame_rate=10.0), "video fields"),
        (lambda d: d.update(extra=1), "non-standard"),
        (lambda d: d["images"][0].update(notes="cut short"), "notes"),
        (lambda d: d["images"][0].update(notes=[]), "left out when there are none"),
        (lambda d: d["images"][0].update(file="/data/a/v.mp4"), "absolute path"),
        (lambda d: d["images"][1].update(file="C:/data/a/i.jpg"), "absolute path"),
        (lambda d: d["images"][1].update(file="../b/i.jpg"), "outside the root folder"),
    ],
)
def test_the_local_validator_catches_what_the_real_one_does(mutate, problem):
    """The checks above are only worth something if the validator can fail."""
    valid = {
        "info": {
            "format_version": "1.6",
            "detector": "x.pth",
            "detection_completion_time": "2024-01-02 03:04:05",
            "detector_metadata": {"megadetector_version": "v", "typical_detection_threshold": 0.2, "conservative_detection_threshold": 0.05},
        },
        "detection_categories": {"1": "animal"},
        "images": [
            {"file": "a/v.mp4", "frame_rate": 30.0, "frames_processed": [0, 10, 20], "detections": [{"category": "1", "conf": 0.5, "bbox": [0.1, 0.2, 0.3, 0.4], "frame_number": 10}]},
            {"file": "a/i.jpg", "detections": []},
            {"file": "a/bad.avi", "frame_rate": -1.0, "frames_processed": [], "failure": "no", "detections": None},
        ],
    }
    assert md_batch_errors(valid) == []
    broken = copy.deepcopy(valid)
    mutate(broken)
    errors = md_batch_errors(broken)
    assert any(problem in error for error in errors), errors


# -- bottom crop ---------------------------------------------------------------------------------


def test_boxes_with_crop_bottom_pixels_are_relative_to_the_full_frame(media, tmp_path):
    """A box over all the detector saw ends where the crop starts: (64 - 8) / 64 of the height."""
    config = VideoLoaderConfig(fps=1, ensure_total_frames=False, crop_bottom_pixels=BAND_ROWS, megadetector_lite_config={})
    detector = IndexScoringDetector({10: 0.9, 50: 0.7}, box=(0.0, 0.0, 1.0, 1.0))
    report, _ = run([media[0], media[-1]], tmp_path / "out", video_loader_config=config, detector=detector)
    assert {size for call in detector.calls for size in call["sizes"]} == {(64 - BAND_ROWS, 96)}
    kept = (64 - BAND_ROWS) / 64
    video, photo = report.records
    assert video.frames[1]["detections"][0][:4] == pytest.approx([0.0, 0.0, 1.0, kept])
    assert photo.frames[0]["detections"][0][:4] == pytest.approx([0.0, 0.0, 1.0, kept])
    entries = read_json(tmp_path / "out")["images"]
    assert_valid_md_batch(read_json(tmp_path / "out"))
    for entry in entries:
        x, y, w, h = entry["detections"][0]["bbox"]
        assert (x, y, w) == (0.0, 0.0, 1.0) and y + h == pytest.approx(kept, abs=1e-4)


# -- progress callback ---------------------------------------------------------------------------


def test_progress_is_reported_once_per_file(media, done):
    # Files that cannot be media get their records first (without being opened), then the others
    # as they are done (here, in this process: in the order given).
    names = [Path(name).name for name in ORDER]
    first = [name for name in names if name in UNREADABLE]
    assert done.progress == [(name, k + 1, len(media)) for k, name in enumerate(first + [n for n in names if n not in first])]


# -- worker processes ----------------------------------------------------------------------------


def test_worker_processes_give_the_same_records_and_outputs_as_this_process(megadetector_lite, tmp_path):
    """With the real MegadetectorLite: num_workers=2 (the detector exported before the workers
    start, each loading it) finds what the run in this process finds, frame for frame."""
    from tests.media import make_animal_clip

    animals = {"first.mp4": [0], "second.mp4": [4], "both.mp4": [0, 4]}  # 2 s at 4 fps: 1 fps sees 0 and 4
    clips = [make_animal_clip(tmp_path / "media" / name, animal_at, n_frames=8, fps=4) for name, animal_at in animals.items()]
    here, _ = run(clips, tmp_path / "here", detector=megadetector_lite)
    workers = detect_files(clips, tmp_path / "workers", num_workers=2, relative_to=tmp_path / "media")
    assert workers.run.detector.detector is None  # nothing loaded in this process: the workers did
    for record, animal_at in zip(here.records, animals.values()):
        assert not record.failed, record.reason
        assert [f["frame_number"] for f in record.frames] == [0, 4]
        # It found the animal where it is (so the comparison below is not of empty lists).
        assert [f["frame_number"] for f in record.animal_frames(0.25)] == animal_at, record.frames
    assert [r.to_json() for r in workers.records] == [r.to_json() for r in here.records]
    assert comparable(tmp_path / "workers") == comparable(tmp_path / "here")


# -- resuming ------------------------------------------------------------------------------------


def interrupted_run(files, out, at_call) -> Interrupted:
    """A run stopped by Ctrl-C on the detector's call ``at_call``: its outputs hold the files
    finished, and say that they are partial."""
    with pytest.raises(Interrupted) as stopped:
        run(files, out, detector=IndexScoringDetector(SCORES, interrupt_at_call=at_call))
    finished = finished_files(out, files)
    assert (stopped.value.done, stopped.value.total) == (len(finished), len(files))
    assert sorted(stopped.value.outputs.values()) == sorted([out / SUMMARY_CSV, out / DETECTIONS_JSON, out / SEGMENTS_CSV, out / RESULTS_FILE])
    data = read_json(out)
    assert_valid_md_batch(data)
    # The files finished, in the order given.
    assert [entry["file"] for entry in data["images"]] == [Path(f).relative_to(files[0].parent).as_posix() for f in finished]
    assert data["info"]["custom_metadata"]["partial"] == {
        "files_done": len(finished),
        "files_in_run": len(files),
        "note": "the run was interrupted: the same command continues it and writes the whole file",
    }
    assert [row["filepath"] for row in read_csv(out)] == finished
    return stopped.value


def finished_files(out: Path, files) -> list[str]:
    """The files a stopped run finished, in input order: those in its journal, and the unreadable
    ones (finished before any work, and not journaled: a rerun checks them again)."""
    journaled = [item["item"] for item in progress_lines(out)[1:]]
    assert not set(journaled) & {str(f) for f in files if Path(f).name in UNREADABLE}
    return in_input_order(journaled + [str(f) for f in files if Path(f).name in UNREADABLE], files)


def progress_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / PROGRESS_FILE).read_text(encoding="utf-8").splitlines()]


def test_an_interrupted_run_resumes_where_it_stopped(fresh_media, tmp_path):
    out = tmp_path / "out"
    # Calls: a (1), b (2), c (3: Ctrl-C). a, b and the failures before c are done.
    interrupted_run(fresh_media, out, at_call=3)
    done = finished_files(out, fresh_media)
    assert done == [str(p) for p in fresh_media[: ORDER.index("sub/c.mov")]]

    report, detector = run(fresh_media, out)
    assert files_seen(detector) == ["c.mov", "photo.jpg"]  # only what was not done
    assert report.skipped == len(done) - len(UNREADABLE)  # those are checked again: nothing to open
    assert [r.item for r in report.records] == [str(p) for p in fresh_media]

    uninterrupted, _ = run(fresh_media, tmp_path / "other")
    assert [r.to_json() for r in report.records] == [r.to_json() for r in uninterrupted.records]
    assert comparable(out) == comparable(tmp_path / "other")

    # A third run has nothing left to do and writes the same outputs.
    again, detector = run(fresh_media, out)
    assert detector.calls == [] and again.skipped == len(fresh_media) - len(UNREADABLE)
    assert comparable(out) == comparable(tmp_path / "other")


def test_a_torn_last_line_in_the_progress_file_is_tolerated(fresh_media, tmp_path):
    out = tmp_path / "out"
    interrupted_run(fresh_media, out, at_call=2)  # a done; Ctrl-C on b
    with open(out / PROGRESS_FILE, "a", encoding="utf-8") as handle:
        handle.write('{"item": "' + str(fresh_media[3])[:10])  # the crash cut this line short
    report, detector = run(fresh_media, out)
    assert files_seen(detector) == ["b.mp4", "c.mov", "photo.jpg"]
    assert report.skipped == 3  # a, empty, noise
    # The records written after the torn line are readable: nothing is done twice on a rerun.
    again, detector = run(fresh_media, out)
    assert detector.calls == [] and again.skipped == len(fresh_media) - len(UNREADABLE)
    uninterrupted, _ = run(fresh_media, tmp_path / "other")
    assert comparable(out) == comparable(tmp_path / "other")


def test_a_progress_file_whose_header_a_crash_cut_short_starts_over(fresh_media, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / PROGRESS_FILE).write_text('{"kifaru_detect_prog')  # nothing after it: nothing to lose
    report, detector = run(fresh_media, out)
    assert report.skipped == 0 and len(detector.calls) == 4
    assert json.loads((out / PROGRESS_FILE).read_text().splitlines()[0])["kifaru_detect_progress"] == 2


def test_a_damaged_progress_header_with_results_after_it_is_refused(fresh_media, tmp_path):
    out = tmp_path / "out"
    run(fresh_media, out)
    lines = (out / PROGRESS_FILE).read_text().splitlines()
    (out / PROGRESS_FILE).write_text("\n".join(["{damaged", *lines[1:]]) + "\n")
    with pytest.raises(ConfigError, match=f"progress file {PROGRESS_FILE} of an earlier run is damaged .*its {len(fresh_media) - len(UNREADABLE)} results.*pass --overwrite to start over"):
        run(fresh_media, out)
    report, detector = run(fresh_media, out, overwrite=True)
    assert report.skipped == 0 and len(detector.calls) == 4


def test_other_settings_are_refused_naming_what_differs(fresh_media, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run(fresh_media, out)
    before = {name: (out / name).read_bytes() for name in (PROGRESS_FILE, DETECTIONS_JSON, SUMMARY_CSV)}
    with pytest.raises(ConfigError) as refused:
        run(fresh_media, out, video_loader_config=default_detect_config(fps=2))
    message = str(refused.value)
    assert f"{out} holds the results of an earlier run made with other settings (video_loader_config.fps: 1.0 then, 2.0 now)." in message
    assert "pass --overwrite to start over" in message
    # Nothing of the earlier run was touched.
    assert {name: (out / name).read_bytes() for name in before} == before
    # Detector settings count too, each named.
    with pytest.raises(ConfigError, match=r"\(video_loader_config.megadetector_lite_config.confidence: 0.25 then, 0.5 now; video_loader_config.fps: 1.0 then, 2.0 now\)"):
        run(fresh_media, out, video_loader_config=default_detect_config(fps=2, confidence=0.5))
    # Other weights: named by the start of their sha256.
    earlier = progress_lines(out)[0]["weights"]
    monkeypatch.setattr(kifaru.models.registry, "MEGADETECTOR_LITE", replace(MEGADETECTOR_LITE, weights_sha256="ab" * 32))
    with pytest.raises(ConfigError, match=rf"\(weights: {earlier[:12]}\.\.\. then, abababababab\.\.\. now\)"):
        run(fresh_media, out)
    monkeypatch.undo()
    assert {name: (out / name).read_bytes() for name in before} == before
    # --overwrite starts over with the new settings.
    report, detector = run(fresh_media, out, video_loader_config=default_detect_config(fps=2), overwrite=True)
    assert report.skipped == 0 and files_seen(detector) == ["a.mp4", "b.mp4", "c.mov", "photo.jpg"]
    assert len(report.records[0].frames) == 6
    lines = progress_lines(out)
    assert lines[0]["video_loader_config"]["fps"] == 2 and len(lines) == 1 + len(fresh_media) - len(UNREADABLE)


def test_finished_outputs_without_a_progress_file_are_refused(fresh_media, tmp_path):
    """The settings they were made with cannot be known: as predict (and zamba) do, refused
    unless overwrite."""
    out = tmp_path / "out"
    run(fresh_media, out)
    (out / PROGRESS_FILE).unlink()
    with pytest.raises(ConfigError, match=f"{out} already holds {DETECTIONS_JSON} and {SUMMARY_CSV}: pass --overwrite to start over"):
        run(fresh_media, out)
    (out / SUMMARY_CSV).unlink()
    with pytest.raises(ConfigError, match=f"already holds {DETECTIONS_JSON}: pass --overwrite"):
        run(fresh_media, out)
    report, detector = run(fresh_media, out, overwrite=True)
    assert report.skipped == 0 and len(detector.calls) == 4


def test_the_threshold_and_relative_to_are_applied_again_without_detecting_again(fresh_media, tmp_path):
    out = tmp_path / "out"
    run(fresh_media, out, threshold=0.25)
    assert by_name(read_csv(out))["b.mp4"]["result"] == "blank"
    report, detector = run(fresh_media, out, threshold=0.1, relative_to=fresh_media[0].parent.parent)
    assert detector.calls == [] and report.skipped == len(fresh_media) - len(UNREADABLE)
    assert by_name(read_csv(out))["b.mp4"]["result"] == "animal"
    assert paths_in(out)[0][0] == "media/a.mp4" and paths_in(out)[1] == str(fresh_media[0].parent.parent)


def test_a_changed_file_is_done_again(fresh_media, tmp_path):
    out = tmp_path / "out"
    run(fresh_media, out)
    b = fresh_media[ORDER.index("b.mp4")]
    make_clip(b, frames=[index_frame(100 + i) for i in range(20)])  # now 2 s: a new size
    os.utime(b, ns=(b.stat().st_atime_ns, b.stat().st_mtime_ns + 10**9))
    report, detector = run(fresh_media, out)
    assert files_seen(detector) == ["b.mp4"] and report.skipped == len(fresh_media) - 1 - len(UNREADABLE)
    assert len(report.records[ORDER.index("b.mp4")].frames) == 2
    # Same size, new modification time: done again too.
    os.utime(b, ns=(b.stat().st_atime_ns, b.stat().st_mtime_ns + 10**9))
    report, detector = run(fresh_media, out)
    assert files_seen(detector) == ["b.mp4"]
    # A file that failed before and is fine now is done again.
    make_clip(fresh_media[ORDER.index("empty.mp4")], frames=[index_frame(150 + i) for i in range(10)])
    report, detector = run(fresh_media, out)
    assert len(detector.calls) == 1 and not report.records[ORDER.index("empty.mp4")].failed
    # So is a file that was missing and is there now.
    make_clip(fresh_media[ORDER.index("gone.mp4")], frames=[index_frame(160 + i) for i in range(10)])
    report, detector = run(fresh_media, out)
    assert len(detector.calls) == 1 and not report.records[ORDER.index("gone.mp4")].failed


def test_overwrite_does_everything_again(fresh_media, tmp_path):
    out = tmp_path / "out"
    run(fresh_media, out)
    report, detector = run(fresh_media, out, overwrite=True)
    assert report.skipped == 0 and files_seen(detector) == ["a.mp4", "b.mp4", "c.mov", "photo.jpg"]
    assert len(progress_lines(out)) == 1 + len(fresh_media) - len(UNREADABLE)  # the old records are gone


def test_records_survive_the_progress_file_round_trip(done):
    lines = progress_lines(done.out)
    assert lines[0]["kifaru_detect_progress"] == 2
    # One line per file opened: the record as Record.to_json() (its file under "item"). The
    # unreadable ones are not journaled: a rerun checks them again, at no cost.
    opened = [r for r in done.report.records if Path(r.item).name not in UNREADABLE]
    assert sorted(line["item"] for line in lines[1:]) == sorted(r.item for r in opened)
    stored = {line["item"]: Record.from_json(line) for line in lines[1:]}
    assert [stored[r.item].to_json() for r in opened] == [r.to_json() for r in opened]
    # Every file that could be read is fingerprinted, so that a changed file is done again.
    assert all(r.fingerprint is not None for r in stored.values())
