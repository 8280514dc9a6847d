"""Options every command shares the meaning of (kifaru.cli): devices checked the same way,
configuration errors that name where the bad value came from, detect's --threshold against its
--confidence, and --save-dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from kifaru.runtime import device
from kifaru.cli import EXIT_OK, EXIT_USAGE, main
from kifaru.runs.detect import DETECTIONS_JSON, SUMMARY_CSV
from kifaru.video.loader import KEPT_BOX_THRESHOLD
from tests.detection.fakes import IndexScoringDetector, StandInLoading
from tests.media import index_frame, make_clip
from tests.models.tiny_model import write_tiny_checkpoint


@pytest.fixture
def no_gpu(monkeypatch):
    """This machine as one without a GPU, whatever it has (torch is then never asked)."""
    monkeypatch.setattr(device, "_gpu_possible", lambda: False)


@pytest.fixture
def stand_in(monkeypatch) -> StandInLoading:
    return StandInLoading(monkeypatch, IndexScoringDetector({50: 0.9, 60: 0.15}))


@pytest.fixture
def photos(tmp_path) -> Path:
    """Two photos: one the stand-in scores 0.9, one 0.15."""
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(index_frame(50)).save(folder / "strong.jpg")
    Image.fromarray(index_frame(60)).save(folder / "weak.jpg")
    return folder


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- devices ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("requested", "missing"), [("cuda", "no CUDA GPU here"), ("cuda:1", "no CUDA GPU here"), ("mps", "no Apple GPU (MPS) here")])
def test_detect_device_that_is_not_here_exits_2_naming_the_option(no_gpu, stand_in, photos, tmp_path, capsys, requested, missing):
    assert main(["detect", "--data-dir", str(photos), "--save-dir", str(tmp_path / "out"), "--device", requested]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"error: --device {requested}: {missing} (devices here: cpu)")
    assert "Traceback" not in err and stand_in.calls == [] and not (tmp_path / "out").exists()


def test_detect_device_from_a_yaml_file_names_the_file_and_the_field(no_gpu, stand_in, photos, tmp_path, capsys):
    config = write(tmp_path / "gpu.yaml", "video_loader_config:\n  megadetector_lite_config:\n    device: cuda\n")
    assert main(["detect", "--data-dir", str(photos), "--config", str(config), "--num-workers", "0"]) == EXIT_USAGE
    assert f"error: {config}: video_loader_config.megadetector_lite_config.device cuda: no CUDA GPU here" in capsys.readouterr().err
    # --device on the command line wins over the file's
    assert main(["detect", "--data-dir", str(photos), "--config", str(config), "--device", "cpu", "--save-dir", str(tmp_path / "o"), "-q", "--num-workers", "0"]) == EXIT_OK
    assert stand_in.calls[-1]["device"] == "cpu"


def test_frames_with_a_detector_device_that_is_not_here_exits_2(no_gpu, tmp_path, capsys):
    clip = make_clip(tmp_path / "clip.mp4", n_frames=10)
    config = write(tmp_path / "mps.yaml", "video_loader_config:\n  total_frames: 4\n  megadetector_lite_config:\n    device: mps\n")
    assert main(["frames", str(clip), "--config", str(config)]) == EXIT_USAGE
    assert f"{config}: video_loader_config.megadetector_lite_config.device mps: no Apple GPU (MPS) here" in capsys.readouterr().err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.ckpt")


@pytest.fixture
def clips(tmp_path) -> Path:
    make_clip(tmp_path / "clips" / "a.mp4", n_frames=20)
    return tmp_path / "clips"


def test_predict_gpus_and_loader_device_that_are_not_here_exit_2(no_gpu, checkpoint, clips, tmp_path, capsys):
    predict = ["predict", "--data-dir", str(clips), "--checkpoint", str(checkpoint), "--save-dir", str(tmp_path / "out")]
    assert main([*predict, "--gpus", "1"]) == EXIT_USAGE
    assert "error: gpus 1: no CUDA GPU here (devices here: cpu); use gpus 0 for the CPU" in capsys.readouterr().err
    config = write(
        tmp_path / "c.yaml",
        "video_loader_config:\n  total_frames: 4\n  model_input_height: 24\n  model_input_width: 40\n"
        "  megadetector_lite_config:\n    device: cuda\n",
    )
    assert main([*predict, "--config", str(config)]) == EXIT_USAGE
    assert "video_loader_config.megadetector_lite_config.device cuda: no CUDA GPU here" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_train_gpus_that_are_not_here_exit_2(no_gpu, tmp_path, capsys):
    labels = write(tmp_path / "labels.csv", "filepath,label\na.mp4,cat\n")
    assert main(["train", "--labels", str(labels), "--gpus", "2", "--save-dir", str(tmp_path / "out")]) == EXIT_USAGE
    assert "error: gpus 2: no CUDA GPU here (devices here: cpu); use gpus 0 for the CPU" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# -- where a bad value came from -------------------------------------------------------------


def test_a_bad_option_is_named_as_the_option_with_its_value(stand_in, photos, capsys):
    assert main(["detect", "--data-dir", str(photos), "--fps", "-1"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.splitlines() == ["error: --fps -1: invalid configuration", "  video_loader_config.fps: Input should be greater than 0 (got -1.0)"]


def test_a_bad_value_in_a_file_is_named_as_the_file(stand_in, photos, tmp_path, capsys):
    config = write(tmp_path / "bad.yaml", "video_loader_config:\n  fps: -1\n")
    assert main(["detect", "--data-dir", str(photos), "--config", str(config), "--num-workers", "0"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: {config}: invalid configuration", "  video_loader_config.fps: Input should be greater than 0 (got -1)"]
    # ... and with an unrelated --set, still the file's
    assert main(["detect", "--data-dir", str(photos), "--config", str(config), "--set", "crop_bottom_pixels=2"]) == EXIT_USAGE
    assert capsys.readouterr().err.startswith(f"error: {config}: invalid configuration")
    # ... and a command-line value replacing it fixes it
    assert main(["detect", "--data-dir", str(photos), "--config", str(config), "--fps", "2", "--save-dir", str(tmp_path / "o"), "-q"]) == EXIT_OK


def test_a_bad_set_value_is_named_as_set(stand_in, photos, tmp_path, capsys):
    assert main(["detect", "--data-dir", str(photos), "--set", "fps=-1"]) == EXIT_USAGE
    assert capsys.readouterr().err.splitlines()[0] == "error: --set fps=-1: invalid configuration"
    clip = make_clip(tmp_path / "clip.mp4", n_frames=5)
    assert main(["frames", str(clip), "--set", "total_frames=0"]) == EXIT_USAGE
    assert capsys.readouterr().err.splitlines() == [
        "error: --set total_frames=0: invalid configuration",
        "  video_loader_config.total_frames: Input should be greater than 0 (got 0)",
    ]


def test_predict_names_the_option_and_set(checkpoint, clips, tmp_path, capsys):
    predict = ["predict", "--data-dir", str(clips), "--checkpoint", str(checkpoint), "--save-dir", str(tmp_path / "out")]
    assert main([*predict, "--batch-size", "0"]) == EXIT_USAGE
    assert capsys.readouterr().err.splitlines() == [
        "error: --batch-size 0: invalid configuration",
        "  predict_config.batch_size: Input should be greater than 0 (got 0)",
    ]
    assert main([*predict, "--set", "model_input_height=-5"]) == EXIT_USAGE
    assert capsys.readouterr().err.splitlines()[0] == "error: --set model_input_height=-5: invalid configuration"


# -- --threshold and --confidence ------------------------------------------------------------


def detector_info(out: Path) -> dict:
    return json.loads((out / DETECTIONS_JSON).read_text(encoding="utf-8"))["info"]["detector_metadata"]


def summary(out: Path) -> dict[str, str]:
    lines = (out / SUMMARY_CSV).read_text(encoding="utf-8").splitlines()
    column = lines[0].split(",").index("result")
    return {Path(line.split(",")[0]).name: line.split(",")[column] for line in lines[1:]}


def test_threshold_below_the_confidence_counts_the_weaker_boxes_kept_for_the_json(stand_in, photos, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["detect", "--data-dir", str(photos), "--confidence", "0.4", "--threshold", "0.1", "--save-dir", str(out), "-q"]
    assert main([*argv, "--num-workers", "0"]) == EXIT_OK
    assert "lowered" not in capsys.readouterr().err
    # Boxes are kept down to KEPT_BOX_THRESHOLD whatever the confidence: weak.jpg's 0.15 counts.
    assert {call["confidence"] for call in stand_in.detector.calls} == {KEPT_BOX_THRESHOLD}
    assert summary(out) == {"strong.jpg": "animal", "weak.jpg": "animal"}
    assert detector_info(out)["typical_detection_threshold"] == 0.1
    assert detector_info(out)["conservative_detection_threshold"] == 0.1


def test_threshold_below_the_boxes_kept_lowers_the_confidence_so_weaker_boxes_count(stand_in, photos, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["detect", "--data-dir", str(photos), "--threshold", "0.01", "--save-dir", str(out), "-q", "--num-workers", "0"]) == EXIT_OK
    assert "below 0.05, under which boxes are not kept: the detector's confidence is lowered to it" in capsys.readouterr().err
    assert {call["confidence"] for call in stand_in.detector.calls} == {0.01}
    assert detector_info(out)["typical_detection_threshold"] == 0.01


def test_without_threshold_a_higher_confidence_is_the_threshold(stand_in, photos, tmp_path):
    out = tmp_path / "out"
    assert main(["detect", "--data-dir", str(photos), "--confidence", "0.5", "--save-dir", str(out), "-q", "--num-workers", "0"]) == EXIT_OK
    assert detector_info(out)["typical_detection_threshold"] == 0.5
    out = tmp_path / "default"
    assert main(["detect", "--data-dir", str(photos), "--save-dir", str(out), "-q", "--num-workers", "0"]) == EXIT_OK
    assert detector_info(out)["typical_detection_threshold"] == 0.25
    assert summary(out) == {"strong.jpg": "animal", "weak.jpg": "blank"}


# -- --save-dir ------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--save-dir", "--output-dir"])
def test_detect_takes_save_dir_as_predict_and_train_do_and_output_dir_too(stand_in, photos, tmp_path, option):
    assert main(["detect", "--data-dir", str(photos), option, str(tmp_path / "out"), "-q", "--num-workers", "0"]) == EXIT_OK
    assert (tmp_path / "out" / DETECTIONS_JSON).is_file()


def test_save_dir_is_in_every_run_commands_help(capsys):
    for command in ("detect", "predict", "train"):
        assert main([command, "--help"]) == EXIT_OK
        assert "--save-dir" in capsys.readouterr().out
