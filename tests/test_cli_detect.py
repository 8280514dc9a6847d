"""``kifaru detect`` on the command line, with a stand-in detector in place of MegadetectorLite."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from kifaru.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from kifaru.detect import DETECTIONS_JSON, PROGRESS_FILE, SUMMARY_CSV
from tests.detection.fakes import IndexScoringDetector
from tests.detection.md_format import assert_valid_md_batch
from tests.media import BAND_ROWS, index_frame, make_clip

# a.mp4 shows 0-29 at 10 fps (3 s), sub/b.mov 100-129; photo.jpg shows 50.
SCORES = {10: 0.9, 20: 0.3, 110: 0.45, 50: 0.8}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    make_clip(folder / "a.mp4")
    make_clip(folder / "sub" / "b.mov", frames=[index_frame(100 + i) for i in range(30)])
    Image.fromarray(index_frame(50)).save(folder / "photo.jpg", quality=95)
    (folder / "notes.txt").write_text("not media: not picked up")
    return folder


class Loaded:
    """What ``load_megadetector_lite`` was asked for, and the stand-in it handed out."""

    def __init__(self):
        self.calls: list[dict] = []
        self.detector = IndexScoringDetector(SCORES)


@pytest.fixture
def loaded(monkeypatch) -> Loaded:
    import kifaru.detection.megadetector_lite as module

    state = Loaded()

    def fake_load(**kwargs):
        state.calls.append(kwargs)
        return state.detector

    monkeypatch.setattr(module, "load_megadetector_lite", fake_load)
    return state


def detect(*args) -> int:
    return main(["detect", *map(str, args)])


def outputs(out: Path) -> tuple[dict, dict[str, dict]]:
    data = json.loads((out / DETECTIONS_JSON).read_text(encoding="utf-8"))
    with open(out / SUMMARY_CSV, newline="", encoding="utf-8") as handle:
        rows = {Path(row["filepath"]).name: row for row in csv.DictReader(handle)}
    return data, rows


def write_filepaths(path: Path, files, column="filepath") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([column, "label"])
        writer.writerows([str(f), "x"] for f in files)
    return path


def test_data_dir_writes_both_outputs(data_dir, tmp_path, loaded, capsys):
    out = tmp_path / "out"
    assert detect("--data-dir", data_dir, "--output-dir", out) == EXIT_OK
    data, rows = outputs(out)
    assert_valid_md_batch(data)
    # Paths relative to --data-dir (Timelapse's root folder), found recursively, sorted.
    assert [e["file"] for e in data["images"]] == ["a.mp4", "photo.jpg", "sub/b.mov"]
    assert rows["a.mp4"]["result"] == "animal" and rows["a.mp4"]["frames_processed"] == "3"
    assert rows["b.mov"]["result"] == "animal" and rows["photo.jpg"]["media"] == "image"
    assert loaded.calls == [{"weights": None, "device": None}]
    assert [len(call["fitted"]) for call in loaded.detector.calls] == [3, 1, 3]  # 1 fps by default
    out_text, err = capsys.readouterr()
    assert "MegadetectorLite on cpu (stand-in); 3 files; frames at 1 fps" in err
    assert "[1/3, 0 failed" in err and "a.mp4: animal (max 0.90, 3 frames)" in err
    assert "3 files: 3 with an animal, 0 blank, 0 failed" in out_text
    assert f"wrote {out / DETECTIONS_JSON}" in out_text and f"wrote {out / SUMMARY_CSV}" in out_text


def test_output_dir_defaults_to_the_working_folder(data_dir, tmp_path, loaded, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert detect("--data-dir", data_dir, "-q") == EXIT_OK
    assert (tmp_path / DETECTIONS_JSON).is_file() and (tmp_path / SUMMARY_CSV).is_file()


def test_quiet_prints_no_line_per_file(data_dir, tmp_path, loaded, capsys):
    assert detect("--data-dir", data_dir, "--output-dir", tmp_path, "--quiet") == EXIT_OK
    assert "[1/3" not in capsys.readouterr().err


def test_filepaths_csv(data_dir, tmp_path, loaded):
    listing = write_filepaths(tmp_path / "files.csv", [data_dir / "sub" / "b.mov", data_dir / "a.mp4"])
    assert detect("--filepaths", listing, "--output-dir", tmp_path / "out") == EXIT_OK
    data, rows = outputs(tmp_path / "out")
    assert_valid_md_batch(data)
    # In the CSV's order, paths as given (no root folder to be relative to).
    assert [e["file"] for e in data["images"]] == [(data_dir / "sub" / "b.mov").as_posix(), (data_dir / "a.mp4").as_posix()]
    assert set(rows) == {"b.mov", "a.mp4"}


def test_filepaths_csv_with_relative_paths_and_duplicates(data_dir, tmp_path, loaded, monkeypatch, capsys):
    monkeypatch.chdir(data_dir)
    listing = write_filepaths(tmp_path / "files.csv", ["a.mp4", "sub/b.mov", "a.mp4"])
    assert detect("--filepaths", listing, "--output-dir", tmp_path / "out", "-q") == EXIT_OK
    data, _ = outputs(tmp_path / "out")
    assert [e["file"] for e in data["images"]] == ["a.mp4", "sub/b.mov"]
    assert "1 duplicate rows ignored" in capsys.readouterr().err


def test_filepaths_csv_without_the_column_is_a_usage_error(data_dir, tmp_path, loaded, capsys):
    listing = write_filepaths(tmp_path / "files.csv", [data_dir / "a.mp4"], column="path")
    assert detect("--filepaths", listing, "--output-dir", tmp_path / "out") == EXIT_USAGE
    err = capsys.readouterr().err
    assert "'filepath' column" in err and "found: path, label" in err
    assert loaded.calls == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [("filepath\n", "no file listed"), (None, "cannot read it")],
)
def test_filepaths_csv_empty_or_missing(tmp_path, loaded, capsys, content, message):
    listing = tmp_path / "files.csv"
    if content is not None:
        listing.write_text(content)
    assert detect("--filepaths", listing) == EXIT_USAGE
    assert message in capsys.readouterr().err and loaded.calls == []


def test_missing_files_in_the_csv_are_failures_and_the_run_goes_on(data_dir, tmp_path, loaded, capsys):
    gone = data_dir / "gone.mp4"
    listing = write_filepaths(tmp_path / "files.csv", [gone, data_dir / "a.mp4"])
    assert detect("--filepaths", listing, "--output-dir", tmp_path / "out") == EXIT_OK
    data, rows = outputs(tmp_path / "out")
    assert_valid_md_batch(data)
    assert rows["gone.mp4"]["result"] == "failed" and str(gone) in rows["gone.mp4"]["failure"]
    assert rows["a.mp4"]["result"] == "animal"
    captured = capsys.readouterr()
    assert f"{gone}: FAILED: {gone}: file not found" in captured.err
    assert "1 failed" in captured.out and "the failed files and why are in" in captured.err


def test_all_files_failing_exits_1(data_dir, tmp_path, loaded):
    listing = write_filepaths(tmp_path / "files.csv", [data_dir / "gone.mp4", tmp_path / "also-gone.avi"])
    assert detect("--filepaths", listing, "--output-dir", tmp_path / "out") == EXIT_FAILED
    data, rows = outputs(tmp_path / "out")  # the outputs are written all the same
    assert_valid_md_batch(data)
    assert [row["result"] for row in rows.values()] == ["failed", "failed"]


def test_data_dir_empty_or_missing_is_a_usage_error(tmp_path, loaded, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no media here")
    assert detect("--data-dir", tmp_path / "empty", "--output-dir", tmp_path / "out") == EXIT_USAGE
    assert "no videos or images found" in capsys.readouterr().err
    assert detect("--data-dir", tmp_path / "nowhere") == EXIT_USAGE
    assert "not a folder" in capsys.readouterr().err
    assert loaded.calls == [] and not (tmp_path / "out").exists()


def test_data_dir_and_filepaths_are_exclusive_and_one_is_needed(tmp_path, loaded, capsys):
    assert detect("--data-dir", tmp_path, "--filepaths", tmp_path / "f.csv") == EXIT_USAGE
    assert detect("--output-dir", tmp_path) == EXIT_USAGE
    assert loaded.calls == []


def test_options_reach_the_config_and_the_detector(data_dir, tmp_path, loaded):
    out = tmp_path / "out"
    weights = tmp_path / "w.pth"
    code = detect(
        "--data-dir", data_dir, "--output-dir", out, "--fps", "2", "--confidence", "0.4", "--threshold", "0.5",
        "--set", f"crop_bottom_pixels={BAND_ROWS}", "--device", "cpu", "--weights", weights, "-q",
    )
    assert code == EXIT_OK
    assert loaded.calls == [{"weights": weights, "device": "cpu"}]
    calls = loaded.detector.calls
    assert [len(call["fitted"]) for call in calls] == [6, 1, 6]  # 3 s clips at 2 fps
    assert all(call["confidence"] == 0.4 for call in calls)
    assert {size for call in calls for size in call["sizes"]} == {(64 - BAND_ROWS, 96)}
    data, rows = outputs(out)
    info = data["info"]
    assert info["custom_metadata"]["frame_sampling"]["fps"] == 2.0
    assert info["custom_metadata"]["detector_settings"]["confidence"] == 0.4
    assert info["detector_metadata"]["typical_detection_threshold"] == 0.5
    assert info["detector_metadata"]["conservative_detection_threshold"] == 0.4
    # 110 scores 0.45: an animal at 0.25, blank at 0.5.
    assert rows["b.mov"]["result"] == "blank" and rows["a.mp4"]["frames_with_animal"] == "1"
    assert rows["a.mp4"]["frames_processed"] == "6"
    progress = json.loads((out / PROGRESS_FILE).read_text().splitlines()[0])
    assert progress["video_loader_config"]["crop_bottom_pixels"] == BAND_ROWS


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--confidence", "1.5"], "megadetector_lite_config.confidence"),
        (["--device", "gpu"], "device 'gpu'"),
        (["--threshold", "2"], "--threshold 2.0"),
        (["--fps", "0"], "fps: Input should be greater than 0"),
        (["--set", "fsp=2"], "did you mean 'fps'"),
        (["--set", "fps"], "FIELD=VALUE"),
    ],
)
def test_bad_options_are_usage_errors_before_the_detector_is_loaded(data_dir, tmp_path, loaded, capsys, option, message):
    assert detect("--data-dir", data_dir, "--output-dir", tmp_path / "out", *option) == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert loaded.calls == []


ZAMBA_YAML = """\
video_loader_config:
  model_input_height: 240
  model_input_width: 426
  crop_bottom_pixels: {crop}
  fps: 2
  total_frames: 16
  megadetector_lite_config:
    confidence: 0.3
    fill_mode: score_sorted
    n_frames: 16
    image_width: 320
    image_height: 320
    frame_batch_size: 4
predict_config:
  model_name: time_distributed
"""


def test_a_zamba_config_is_honoured(data_dir, tmp_path, loaded):
    config = tmp_path / "zamba.yaml"
    config.write_text(ZAMBA_YAML.format(crop=BAND_ROWS))
    assert detect("--data-dir", data_dir, "--output-dir", tmp_path / "out", "--config", config, "-q") == EXIT_OK
    calls = loaded.detector.calls
    # fps 2, not padded to total_frames: 6 + 1 + 6 frames, sent in batches of frame_batch_size
    assert [len(call["fitted"]) for call in calls] == [4, 2, 1, 4, 2]
    assert {(c["confidence"], c["image_width"], c["image_height"], c["batch_size"]) for c in calls} == {(0.3, 320, 320, 4)}
    assert {size for call in calls for size in call["sizes"]} == {(64 - BAND_ROWS, 96)}
    assert {call["fitted"][0].shape for call in calls} == {(187, 320, 3)}  # 96 x 56 fitted into 320 x 320
    data, _ = outputs(tmp_path / "out")
    assert_valid_md_batch(data)
    assert data["info"]["custom_metadata"]["detector_settings"]["image_width"] == 320


def test_command_line_options_override_the_config(data_dir, tmp_path, loaded):
    config = tmp_path / "zamba.yaml"
    config.write_text(ZAMBA_YAML.format(crop=0))
    code = detect(
        "--data-dir", data_dir, "--output-dir", tmp_path / "out", "--config", config,
        "--fps", "1", "--confidence", "0.5", "--set", "crop_bottom_pixels=4", "-q",
    )
    assert code == EXIT_OK
    calls = loaded.detector.calls
    assert [len(call["fitted"]) for call in calls] == [3, 1, 3]
    assert {(c["confidence"], c["image_width"]) for c in calls} == {(0.5, 320)}
    assert {size for call in calls for size in call["sizes"]} == {(60, 96)}


def test_a_bad_config_file_is_a_usage_error(data_dir, tmp_path, loaded, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("video_loader_config:\n  megadetector_lite_config:\n    confidnce: 0.3\n")
    assert detect("--data-dir", data_dir, "--config", config) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "confidnce" in err and "did you mean 'confidence'" in err
    assert loaded.calls == []


def test_an_interrupted_run_resumes_and_overwrite_starts_over(data_dir, tmp_path, loaded, capsys):
    out = tmp_path / "out"
    loaded.detector = IndexScoringDetector(SCORES, interrupt_at_call=2)  # Ctrl-C on the second file
    assert detect("--data-dir", data_dir, "--output-dir", out, "-q") == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (out / DETECTIONS_JSON).exists()

    loaded.detector = IndexScoringDetector(SCORES)
    assert detect("--data-dir", data_dir, "--output-dir", out, "-q") == EXIT_OK
    assert loaded.detector.indices_seen() == [[50], [100, 110, 120]]  # a.mp4 was done
    assert "(1 done by an earlier run)" in capsys.readouterr().out

    loaded.detector = IndexScoringDetector(SCORES)
    assert detect("--data-dir", data_dir, "--output-dir", out, "-q", "--overwrite") == EXIT_OK
    assert len(loaded.detector.calls) == 3
    assert "done by an earlier run" not in capsys.readouterr().out
