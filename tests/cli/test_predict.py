"""``kifaru predict``: options, YAML precedence, messages and exit codes."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from kifaru.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from kifaru.runs.predict import CONFIGURATION_YAML, FAILURES_CSV, MEGADETECTOR_JSON, PREDICTIONS_CSV
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
    # broken.mp4 has a failure record, not a prediction: the run finishes and exits 1.
    assert predict("--data-dir", data_dir, "--checkpoint", checkpoint, "--save-dir", out) == EXIT_FAILED
    captured = capsys.readouterr()
    assert "TinyVideoNet with 3 species" in captured.err and "device cpu (" in captured.err
    assert "classifier in PyTorch;" in captured.err and "warning" not in captured.err  # ONNX Runtime is for the EfficientNet
    configuration = yaml.safe_load((out / CONFIGURATION_YAML).read_text())
    assert configuration["classifier_runtime"] == "pytorch" and "classifier_runtime_fallback_reason" not in configuration
    assert "3 files: 2 predicted, 1 failed" in captured.out
    assert "broken.mp4: FAILED (decode): cannot be opened" in captured.err
    with open(out / PREDICTIONS_CSV, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["filepath"].rsplit("/", 1)[-1] for r in rows] == ["a.mp4", "b.mp4"]
    assert (out / FAILURES_CSV).read_text().count("broken.mp4") == 1

    # Again without --overwrite: refused, nothing changed.
    assert predict("--data-dir", data_dir, "--checkpoint", checkpoint, "--save-dir", out) == EXIT_USAGE
    assert "--overwrite" in capsys.readouterr().err


def test_a_fallback_to_pytorch_is_announced_and_recorded(data_dir, checkpoint, tmp_path, capsys, monkeypatch):
    from kifaru.models import onnx_classifier, runner

    reason = "the exported network's logits differ from PyTorch's by 0.1 on a probe clip"
    monkeypatch.setattr(runner, "choose_runtime", lambda *args: runner.RuntimeChoice("pytorch", reason))
    out = tmp_path / "out"
    assert predict("--data-dir", data_dir, "--checkpoint", checkpoint, "--save-dir", out) == EXIT_FAILED  # broken.mp4
    err = capsys.readouterr().err
    assert f"warning: ONNX Runtime cannot run the classifier, so it runs in PyTorch (slower): {reason}" in err
    assert "classifier in PyTorch (ONNX Runtime failed);" in err
    configuration = yaml.safe_load((out / CONFIGURATION_YAML).read_text())
    assert configuration["classifier_runtime"] == "pytorch"
    assert configuration["classifier_runtime_fallback_reason"] == reason

    # ONNX Runtime chosen, but its sessions fail to load once the run has started: said, and recorded.
    def damaged(*args):
        raise RuntimeError("the cached export is damaged")

    monkeypatch.setattr(runner, "choose_runtime", lambda *args: runner.RuntimeChoice("onnxruntime"))
    monkeypatch.setattr(onnx_classifier, "load_onnx_time_distributed", damaged)
    assert predict("--data-dir", data_dir, "--checkpoint", checkpoint, "--save-dir", out, "--overwrite") == EXIT_FAILED
    err = capsys.readouterr().err
    assert "classifier in ONNX Runtime;" in err and "warning: the classifier runs in PyTorch: the cached export is damaged" in err
    configuration = yaml.safe_load((out / CONFIGURATION_YAML).read_text())
    assert configuration["classifier_runtime"] == "pytorch"
    assert configuration["classifier_runtime_fallback_reason"] == "the cached export is damaged"
    assert len((out / PREDICTIONS_CSV).read_text().splitlines()) == 3  # header, a.mp4, b.mp4: PyTorch predicted


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
    code = predict("--config", config, "--proba-threshold", "0.1", "--save-dir", out, "--set", "model_input_width=36")
    assert code == EXIT_FAILED  # broken.mp4
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
    assert "1 file: 0 predicted, 1 failed" in capsys.readouterr().out


def test_no_save_prints_the_predictions(data_dir, checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert predict("--data-dir", data_dir, "--checkpoint", checkpoint, "--no-save", "-y") == EXIT_FAILED  # broken.mp4
    out = capsys.readouterr().out
    assert out.splitlines()[1] == "filepath," + ",".join(SPECIES)
    assert not list(tmp_path.iterdir())



def test_predict_with_only_its_required_arguments_as_a_new_user(new_user, random_time_distributed_checkpoint, capsys):
    """`kifaru predict --data-dir DIR` on a fresh machine: the official time_distributed model (a
    random-weight copy of the real network, served on the bucket mirror) and MegadetectorLite (the
    real one, served as zamba's wheel) are fetched on first use, saying so with progress, and
    exported to ONNX Runtime, saying so; clips are read by worker processes (the default
    num_workers); zamba's three outputs land in the current folder. A second run is quiet."""
    from kifaru.runtime.device import usable_cores
    from kifaru.models.registry import MEGADETECTOR_LITE, TIME_DISTRIBUTED

    new_user.serve_megadetector_lite()
    new_user.serve_official_checkpoint("time_distributed", random_time_distributed_checkpoint.read_bytes())
    clips = new_user.work / "clips"
    names = ["a.mp4", "b.avi"]  # each clip costs ~6 s of CPU in the network: two are enough
    make_clip(clips / "a.mp4", n_frames=12, size=(128, 224))
    make_clip(clips / "b.avi", n_frames=16, size=(128, 224), codec="mpeg4")

    assert main(["predict", "--data-dir", str(clips)]) == EXIT_OK
    captured = capsys.readouterr()
    assert "2 files: 2 predicted, 0 failed" in captured.out
    workers = min(3, usable_cores())  # num_workers 3 by default, at most one per core
    assert f"2 files, {workers} loading process" in captured.err
    size_mb = random_time_distributed_checkpoint.stat().st_size >> 20
    for entry in (MEGADETECTOR_LITE, TIME_DISTRIBUTED):
        assert f"{entry.name}: not in the model cache yet: downloading {entry.weights_filename}" in captured.err
        assert (new_user.model_cache / entry.weights_filename).is_file()
    assert f"  {size_mb} MB of {size_mb} MB" in captured.err  # the download's progress
    assert "MegadetectorLite: exporting the network to ONNX Runtime" in captured.err
    assert f"{TIME_DISTRIBUTED.weights_filename}: exporting the network to ONNX Runtime" in captured.err

    species = list(TIME_DISTRIBUTED.species)
    with open(new_user.work / PREDICTIONS_CSV, newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["filepath", *species]
        rows = list(reader)
    assert sorted(r["filepath"] for r in rows) == sorted(str((clips / n).resolve()) for n in names)
    # zamba's models are multi-label, a sigmoid per species: each value a probability written to
    # 5 decimals (a row does not sum to 1). Each clip's own frames give its own row.
    values = [[row[s] for s in species] for row in rows]
    assert all(0 < float(v) < 1 and len(v.partition(".")[2]) <= 5 for row in values for v in row)
    assert len({tuple(row) for row in values}) == len(rows)
    assert (new_user.work / FAILURES_CSV).read_text() == "filepath,stage,reason\n"
    configuration = yaml.safe_load((new_user.work / CONFIGURATION_YAML).read_text())
    assert configuration["model_class"] == "TimeDistributedEfficientNet" and configuration["species"] == species
    assert configuration["predict_config"]["weight_download_region"] == "us"
    assert configuration["predict_config"]["checkpoint"] == str(new_user.model_cache / TIME_DISTRIBUTED.weights_filename)

    # Everything is in the cache now: nothing to download or export, nothing said about it (one
    # clip read here, to keep the test short).
    (new_user.work / "one").mkdir()
    (clips / "a.mp4").rename(new_user.work / "one" / "a.mp4")
    second = ["predict", "--data-dir", "one", "--save-dir", "second", "--num-workers", "0", "--output-format", "csv,megadetector"]
    assert main(second) == EXIT_OK
    err = capsys.readouterr().err
    assert "downloading" not in err and "exporting" not in err and " MB" not in err
    # Both formats asked for: the MegaDetector file too, its path relative to the data folder
    # (Timelapse's root), the official model's species as its classification categories.
    megadetector = json.loads((new_user.work / "second" / MEGADETECTOR_JSON).read_text(encoding="utf-8"))
    assert [entry["file"] for entry in megadetector["images"]] == ["a.mp4"]
    assert list(megadetector["classification_categories"].values()) == species
    assert megadetector["info"]["classifier"] == TIME_DISTRIBUTED.weights_filename
    # Read in this process, a.mp4 gets the row the worker processes gave it. The network's float32
    # sums may differ in the last bits with another batch; written to 5 decimals, that is at most
    # one unit of the last decimal.
    with open(new_user.work / "second" / PREDICTIONS_CSV, newline="") as handle:
        (again,) = list(csv.DictReader(handle))
    first = next(r for r in rows if r["filepath"].endswith("a.mp4"))
    assert [float(again[s]) for s in species] == pytest.approx([float(first[s]) for s in species], abs=1.01e-5)


def test_a_junk_checkpoint_is_named_and_explained(data_dir, tmp_path, capsys):
    junk = tmp_path / "model.ckpt"
    junk.write_bytes(b"j" + (174812789).to_bytes(4, "little") + b"junk" * 10)  # torch says "KeyError: 174812789"
    assert predict("--data-dir", data_dir, "--checkpoint", junk, "--save-dir", tmp_path / "out") == EXIT_FAILED
    err = capsys.readouterr().err
    assert f"error: checkpoint {junk}: not a PyTorch checkpoint: neither the zip archive torch.save writes" in err
    assert "174812789" not in err and not (tmp_path / "out").exists()


def test_a_folder_of_clips_and_photos_from_the_command_line(tmp_path, checkpoint, capsys, monkeypatch):
    from kifaru.models.registry import LILA_SCIENCE
    from tests.images.photos import save_photos, write_image_checkpoint

    card = tmp_path / "card"
    make_clip(card / "clip.mp4")
    save_photos(card, 1)
    argv = ["predict", "--data-dir", str(card), "--checkpoint", str(checkpoint), "--num-workers", "0", "--save-dir", str(tmp_path / "out")]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "holds 1 videos and 1 photos" in err and "--photos image" in err and "--photos skip" in err

    species = [f"class_{i:03d}" for i in range(LILA_SCIENCE.num_classes)]
    monkeypatch.setenv(LILA_SCIENCE.weights_env_var, str(write_image_checkpoint(tmp_path / "lila.ckpt", species=species, image_size=224)))
    assert main([*argv, "--photos", "image"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "1 file: 1 predicted, 0 failed" in out and "1 photo (test_convnext): 1 predicted, 0 failed" in out
    assert f"wrote {tmp_path / 'out' / 'zamba_image_predictions.csv'}" in out


def test_preset_fast_from_the_command_line_or_the_yaml_file(megadetector_lite, tmp_path, checkpoint, capsys):
    from tests.media import index_frame, make_animal_clip

    data = tmp_path / "data"
    make_animal_clip(data / "deer.mp4", animal_at=range(4, 10), n_frames=16)
    make_clip(data / "wind.mp4", fps=4, size=(288, 448), frames=[index_frame(i, 288, 448) for i in range(16)])
    loader = {"fps": 4, "total_frames": 4, "model_input_height": 32, "model_input_width": 48, "megadetector_lite_config": {"n_frames": 4}}
    config = tmp_path / "fast.yaml"
    config.write_text(yaml.safe_dump({"predict_config": {"preset": "fast"}, "video_loader_config": loader}))
    assert predict("--config", config, "--data-dir", data, "--checkpoint", checkpoint, "--save-dir", tmp_path / "yaml") == EXIT_OK
    captured = capsys.readouterr()
    assert "fast mode: a screen at 320x320 first" in captured.err
    assert "2 files: 2 predicted (1 decided by the detector: no animal on the screen), 0 failed" in captured.out
    saved = yaml.safe_load((tmp_path / "yaml" / CONFIGURATION_YAML).read_text())
    assert saved["preset"] == "fast" and saved["screen"]["image_size"] == 320
    assert "preset" not in saved["predict_config"]  # zamba's keys only there: zamba reads the file back
    with open(tmp_path / "yaml" / PREDICTIONS_CSV, newline="") as handle:
        decided = {r["filepath"].rsplit("/", 1)[-1]: r["decided_by"] for r in csv.DictReader(handle)}
    assert decided == {"deer.mp4": "classifier", "wind.mp4": "detector"}

    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({"video_loader_config": loader}))
    assert predict("--config", plain, "--data-dir", data, "--checkpoint", checkpoint, "--save-dir", tmp_path / "option", "--preset", "fast") == EXIT_OK
    assert (tmp_path / "option" / PREDICTIONS_CSV).read_text() == (tmp_path / "yaml" / PREDICTIONS_CSV).read_text()
    assert predict("--data-dir", data, "--checkpoint", checkpoint, "--preset", "quick") == EXIT_USAGE
    assert "invalid choice: 'quick'" in capsys.readouterr().err


def test_preset_fast_without_the_detector_says_it_reads_every_clip_as_exact_mode(data_dir, checkpoint, tmp_path, capsys):
    assert predict("--data-dir", data_dir, "--checkpoint", checkpoint, "--save-dir", tmp_path, "--preset", "fast") == EXIT_FAILED  # broken.mp4
    captured = capsys.readouterr()
    assert "--preset fast screens clips with MegadetectorLite, which this video_loader_config leaves out" in captured.err
    assert "fast mode:" not in captured.err and "decided by the detector" not in captured.out
