"""``kifaru predict``: options, YAML precedence, messages and exit codes."""

from __future__ import annotations

import csv

import pytest
import yaml

from kifaru.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from kifaru.predict import CONFIGURATION_YAML, FAILURES_CSV, PREDICTIONS_CSV
from tests.media import make_clip
from tests.models.tiny_model import SPECIES, write_tiny_checkpoint


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    make_clip(folder / "a.mp4", n_frames=20)
    make_clip(folder / "b.mp4", n_frames=30)
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.ckpt")


def predict(*options: str) -> int:
    return main(["predict", "--num-workers", "0", *map(str, options)])


def test_predict_writes_the_outputs_and_reports_failures(data_dir, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    assert predict("--data-dir", data_dir, "--checkpoint", checkpoint, "--save-dir", out) == EXIT_OK
    captured = capsys.readouterr()
    assert "TinyVideoNet with 3 species" in captured.err and "device cpu (" in captured.err
    assert "3 files: 2 predicted, 1 failed" in captured.out
    assert "broken.mp4: FAILED (decode): cannot be opened" in captured.err
    with open(out / PREDICTIONS_CSV, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["filepath"].rsplit("/", 1)[-1] for r in rows] == ["a.mp4", "b.mp4"]
    assert (out / FAILURES_CSV).read_text().count("broken.mp4") == 1

    # Again without --overwrite: refused, nothing changed.
    assert predict("--data-dir", data_dir, "--checkpoint", checkpoint, "--save-dir", out) == EXIT_USAGE
    assert "--overwrite" in capsys.readouterr().err


def test_command_line_options_win_over_the_yaml_file(data_dir, checkpoint, tmp_path, capsys):
    config = tmp_path / "predict.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "predict_config": {"data_dir": str(data_dir), "checkpoint": str(checkpoint), "batch_size": 1, "proba_threshold": 0.9},
                "video_loader_config": {"evenly_sample_total_frames": True, "total_frames": 4, "model_input_height": 24, "model_input_width": 40},
            }
        )
    )
    out = tmp_path / "out"
    assert predict("--config", config, "--proba-threshold", "0.1", "--save-dir", out, "--set", "model_input_width=36") == EXIT_OK
    saved = yaml.safe_load((out / CONFIGURATION_YAML).read_text())
    assert saved["predict_config"]["proba_threshold"] == 0.1  # the option, not the file's 0.9
    assert saved["predict_config"]["batch_size"] == 1  # the file's, not the default
    assert saved["video_loader_config"]["model_input_height"] == 24
    assert saved["video_loader_config"]["model_input_width"] == 36  # --set on top of the file
    rows = (out / PREDICTIONS_CSV).read_text().splitlines()
    assert rows[0] == "filepath," + ",".join(SPECIES)
    assert all(value in ("0", "1") for row in rows[1:] for value in row.split(",")[1:])


def test_set_applies_on_top_of_the_checkpoint_loader_config(data_dir, checkpoint, tmp_path, capsys):
    code = predict("--data-dir", data_dir, "--checkpoint", checkpoint, "--save-dir", tmp_path, "--set", "total_frames=8")
    assert code == EXIT_USAGE
    assert "gives 8 frames per video but the model takes 4" in capsys.readouterr().err


def test_bad_configuration_is_a_usage_error_naming_the_field(data_dir, checkpoint, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"predict_config": {"data_dir": str(data_dir), "proba_treshold": 0.5}}))
    assert predict("--config", config, "--checkpoint", checkpoint) == EXIT_USAGE
    assert "did you mean 'proba_threshold'" in capsys.readouterr().err
    assert predict("--data-dir", data_dir, "--checkpoint", checkpoint, "--proba-threshold", "1.5") == EXIT_USAGE
    assert "proba_threshold must be between 0 and 1" in capsys.readouterr().err


def test_every_file_failing_exits_with_failure(tmp_path, checkpoint, capsys):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "x.mp4").write_bytes(b"")
    code = predict("--data-dir", tmp_path / "clips", "--checkpoint", checkpoint, "--save-dir", tmp_path / "out")
    assert code == EXIT_FAILED
    assert "1 files: 0 predicted, 1 failed" in capsys.readouterr().out


def test_no_save_prints_the_predictions(data_dir, checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert predict("--data-dir", data_dir, "--checkpoint", checkpoint, "--no-save", "-y") == EXIT_OK
    out = capsys.readouterr().out
    assert out.splitlines()[1] == "filepath," + ",".join(SPECIES)
    assert not list(tmp_path.iterdir())
