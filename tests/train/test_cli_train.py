import json
import logging
from pathlib import Path

import pytest

from kifaru.cli import EXIT_OK, EXIT_USAGE, main
from kifaru.train.synthetic import write_training_set

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


def test_kifaru_train_runs_from_a_yaml_file_with_command_line_options_winning(tmp_path, capsys):
    labels = write_training_set(tmp_path / "clips", clips_per_class=4, n_frames=4)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
train_config:
  labels: {labels}
  data_dir: {tmp_path / "clips"}
  from_scratch: true
  backbone: test_efficientnet
  backbone_pretrained: false
  max_epochs: 3
  batch_size: 4
  num_workers: 0
  save_dir: {tmp_path / "not-here"}
video_loader_config:
  fps: 4
  total_frames: 4
  model_input_height: 48
  model_input_width: 64
  cache_dir: {tmp_path / "frames"}
"""
    )
    code = main(["train", "--config", str(config), "--max-epochs", "1", "--save-dir", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    assert "trained 1 epoch(s) on 12 clips (0 left out)" in out
    version = tmp_path / "out" / "version_0"
    assert (version / "time_distributed.ckpt").is_file() and not (tmp_path / "not-here").exists()
    assert "val_macro_f1" in json.loads((version / "val_metrics.json").read_text())


def test_kifaru_train_names_a_misspelled_field(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("train_config:\n  labels: x.csv\n  max_epoch: 3\n")
    assert main(["train", "--config", str(config)]) == EXIT_USAGE
    assert "did you mean 'max_epochs'" in capsys.readouterr().err


def test_kifaru_train_without_labels_says_what_to_give(capsys):
    assert main(["train"]) == EXIT_USAGE
    assert "--labels" in capsys.readouterr().err


def test_train_model_is_kifarus_top_level_function_as_zambas():
    import kifaru
    from kifaru.train.runner import train_model

    assert kifaru.train_model is train_model
    assert kifaru.predict_model.__module__ == "kifaru.runs.predict"


def test_kifaru_train_without_a_config_file_uses_the_official_models_train_config(tmp_path, capsys):
    """As `zamba train`: no --config means config.yaml's train_config of --model (its fine-tuning
    schedule, patience and scheduler), not TrainConfig's defaults."""
    import torch
    import yaml

    from kifaru.models.checkpoint import write_checkpoint
    from kifaru.models.time_distributed import TimeDistributedEfficientNet

    labels = write_training_set(tmp_path / "clips", clips_per_class=4, n_frames=4)
    species = ["blue_disc", "green_bar", "red_square"]
    torch.manual_seed(0)
    network = TimeDistributedEfficientNet(len(species), num_frames=4, backbone_name="test_efficientnet")
    loader = {"fps": 4, "total_frames": 4, "model_input_height": 48, "model_input_width": 64, "cache_dir": str(tmp_path / "frames")}
    hparams = {"num_frames": 4, "backbone_name": "test_efficientnet", "lr": 0.001, "scheduler": None,
               "scheduler_params": None, "video_loader_config": loader}  # fmt: skip
    write_checkpoint(tmp_path / "mine.ckpt", network, "TimeDistributedEfficientNet", species, hparams)
    code = main(["train", "--labels", str(labels), "--data-dir", str(tmp_path / "clips"), "--checkpoint", str(tmp_path / "mine.ckpt"),
                 "--max-epochs", "1", "--batch-size", "4", "--num-workers", "0", "--save-dir", str(tmp_path / "out")])  # fmt: skip
    assert code == EXIT_OK, capsys.readouterr().err
    recorded = yaml.safe_load((tmp_path / "out" / "version_0" / "train_configuration.yaml").read_text())["train_config"]
    assert recorded["backbone_finetune_config"]["unfreeze_backbone_at_epoch"] == 3  # TrainConfig's default is 5
    assert recorded["backbone_finetune_config"]["pre_train_bn"] is True
    assert recorded["early_stopping_config"]["patience"] == 4
    assert recorded["scheduler_config"]["scheduler"] == "MultiStepLR"
    assert recorded["scheduler_config"]["scheduler_params"]["milestones"] == [3]


def test_kifaru_train_with_an_unknown_model_lists_the_official_ones(tmp_path, capsys):
    code = main(["train", "--labels", str(tmp_path / "labels.csv"), "--model", "time_distributd"])
    assert code == EXIT_USAGE
    assert "did you mean 'time_distributed'" in capsys.readouterr().err



def test_kifaru_train_fine_tunes_the_real_official_network_for_an_epoch_as_a_new_user(new_user, random_time_distributed_checkpoint, capsys):
    """`kifaru train --labels labels.csv`, as a zamba user first types it on a fresh machine: the
    official time_distributed model to fine-tune (a random-weight copy of the real 208 MB network on
    the bucket mirror) and MegadetectorLite for its frame selection (the real one, as zamba's wheel
    on the package index) fetched on first use, the official train_config, the default num_workers
    (worker processes read the clips and feed the training), the outputs in ./version_0.

    One change from only the required arguments: --max-epochs 1. The official train_config stops
    early (patience 4, no max_epochs), so at least 5 epochs; on 2 CPU cores the real network takes
    17 s of CPU per clip and pass (forward, more with the backward), which makes even 3 clips
    (the fewest that fill train, val and holdout) a run of over 4 minutes. Early stopping ending a
    run without max_epochs is tested with the tiny network (tests/train/test_runner_defaults.py), and
    the command with nothing but --labels on a small stand-in of this checkpoint in the next test."""
    import torch
    import yaml

    from kifaru.config import PredictConfig, TrainConfig

    new_user.serve_megadetector_lite()
    new_user.serve_official_checkpoint("time_distributed", random_time_distributed_checkpoint.read_bytes())
    written = write_training_set(new_user.work / "clips", clips_per_class=3, classes=["red_square"], n_frames=16)
    names = [line.split(",")[0] for line in written.read_text().splitlines()[1:]]
    # Paths as users write them: relative to the current folder, or absolute.
    paths = ["clips/" + names[0], str(new_user.work / "clips" / names[1]), "./clips/" + names[2]]
    (new_user.work / "labels.csv").write_text("filepath,label\n" + "".join(f"{path},red_square\n" for path in paths))

    assert main(["train", "--labels", "labels.csv", "--max-epochs", "1"]) == EXIT_OK, capsys.readouterr().err
    out = capsys.readouterr().out
    version = new_user.work / "version_0"
    assert f"wrote {version / 'time_distributed.ckpt'} and the run's outputs in {version}" in out
    for name in ("time_distributed.ckpt", "train_configuration.yaml", "val_metrics.json", "test_metrics.json", "splits.csv",
                 "failures.csv", "checkpoints/last.ckpt"):  # fmt: skip
        assert (version / name).is_file(), name
    assert (new_user.work / "splits.csv").read_text() == (version / "splits.csv").read_text()
    assert sorted(line.split(",")[1] for line in (version / "splits.csv").read_text().splitlines()[1:]) == ["holdout", "train", "val"]
    recorded = yaml.safe_load((version / "train_configuration.yaml").read_text())
    assert recorded["train_config"]["num_workers"] == TrainConfig.model_fields["num_workers"].default == 3
    assert recorded["train_config"]["early_stopping_config"]["patience"] == 4  # the official train_config's
    assert recorded["video_loader_config"]["megadetector_lite_config"] is not None
    assert recorded["species"] == ["red_square"]
    assert {"val_macro_f1", "val_loss"} <= set(json.loads((version / "val_metrics.json").read_text()))
    assert {"test_macro_f1", "test_loss"} <= set(json.loads((version / "test_metrics.json").read_text()))
    assert torch.load(version / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 0

    # kifaru predict's loader reads the trained model (its best weights) and the frames it was trained on.
    from kifaru.models.runner import load_classifier
    from kifaru.runs.predict import resolve_predict_run

    listing = new_user.work / "to_predict.csv"
    listing.write_text("filepath\nclips/" + names[0] + "\n")
    run = resolve_predict_run(PredictConfig(filepaths=listing, checkpoint=version / "time_distributed.ckpt", save=False))
    assert run.checkpoint.species == ["red_square"] and run.checkpoint.model_class == "TimeDistributedEfficientNet"
    assert run.video_loader_config.model_dump(mode="json", exclude={"cache_dir", "cleanup_cache"}) == run.checkpoint.hyper_parameters["video_loader_config"]
    new_user.monkeypatch.setenv("KIFARU_CLASSIFIER_RUNTIME", "torch")  # PyTorch's network, not an ONNX export of it
    classifier = load_classifier(run.checkpoint, run.checkpoint_sha256, run.device)
    best = next((version / "checkpoints").glob("best-*.ckpt"))
    trained = torch.load(best, weights_only=False)["state_dict"]
    loaded = classifier.model.state_dict()
    assert classifier.species == ["red_square"] and classifier.num_frames == 16
    assert {f"model.{key}" for key in loaded} == set(trained)
    assert all(torch.equal(value, trained[f"model.{key}"]) for key, value in loaded.items())



def _small_official_time_distributed(path: Path) -> bytes:
    """A stand-in for the official time_distributed checkpoint as the bucket serves it: its model
    class, its 32 species and its hyper-parameters, with timm's tiny test_efficientnet as backbone
    (kifaru builds the backbone a checkpoint names), so that training runs in seconds a pass."""
    from kifaru.models.checkpoint import write_checkpoint
    from kifaru.models.registry import video_model_entry
    from kifaru.models.time_distributed import TimeDistributedEfficientNet
    from tests.models.random_checkpoint import TIME_DISTRIBUTED_HPARAMS

    species = list(video_model_entry("time_distributed").species)
    model = TimeDistributedEfficientNet(len(species), num_frames=16, backbone_name="test_efficientnet")
    write_checkpoint(path, model, "TimeDistributedEfficientNet", species, {**TIME_DISTRIBUTED_HPARAMS, "backbone_name": "test_efficientnet"})
    return path.read_bytes()


def test_kifaru_train_with_nothing_but_labels_runs_the_official_schedule_to_its_early_stop(new_user, capsys):
    """`kifaru train --labels labels.csv` and not one option more: the official train_config's
    whole schedule (no max_epochs: early stopping, patience 4; the backbone unfrozen at epoch 3;
    MultiStepLR), the default num_workers, the official loader config with MegadetectorLite. The
    official checkpoint is the small stand-in above (the real network's cost is why the test
    before this one stops after one epoch); everything else is what a new user gets."""
    import torch
    import yaml

    new_user.serve_megadetector_lite()
    new_user.serve_official_checkpoint("time_distributed", _small_official_time_distributed(new_user.home.parent / "td.ckpt"))
    written = write_training_set(new_user.work / "clips", clips_per_class=3, classes=["red_square"], n_frames=16)
    (new_user.work / "labels.csv").write_text(
        "filepath,label\n" + "".join(f"clips/{line}\n" for line in written.read_text().splitlines()[1:])
    )

    assert main(["train", "--labels", "labels.csv"]) == EXIT_OK, capsys.readouterr().err
    version = new_user.work / "version_0"
    last_epoch = torch.load(version / "checkpoints" / "last.ckpt", weights_only=False)["epoch"]
    best = next((version / "checkpoints").glob("best-*.ckpt"))
    best_epoch = int(best.stem.split("=")[1])
    # Early stopping ended it: patience (4) epochs without a better val_macro_f1 after the best one.
    assert last_epoch == best_epoch + 4, (best_epoch, last_epoch)
    recorded = yaml.safe_load((version / "train_configuration.yaml").read_text())
    assert recorded["train_config"]["max_epochs"] is None and recorded["train_config"]["num_workers"] == 3
    assert (version / "time_distributed.ckpt").is_file() and (version / "val_metrics.json").is_file()


def _tiny_training_yaml(tmp_path, labels, **fields):
    """A train_config for the tiny timm network on labels' clips, with the loader config it reads."""
    import yaml

    train_config = dict(
        labels=str(labels), data_dir=str(labels.parent), from_scratch=True, backbone="test_efficientnet",
        backbone_pretrained=False, max_epochs=1, batch_size=3, num_workers=0, save_dir=str(tmp_path / "out"), seed=1,
    )  # fmt: skip
    train_config.update(fields)
    loader = {"fps": 4, "total_frames": 4, "model_input_height": 48, "model_input_width": 64, "cache_dir": str(tmp_path / "frames")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"train_config": train_config, "video_loader_config": loader}))
    return path


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_training_shows_kifarus_warnings_and_not_third_party_noise(tmp_path, capfd):
    """Lightning's advertisement for its cloud logger, its TPU line, its lines about loading the
    best checkpoint for scoring and PyTorch's LeafSpec deprecation (raised four times by
    Lightning's own code) are left out; kifaru's warnings and Lightning's other lines are not."""
    from kifaru.train.synthetic import CLASSES

    labels = write_training_set(tmp_path / "clips", clips_per_class=3, classes=CLASSES[:2], n_frames=4)
    records = _Records()
    lightning = logging.getLogger("pytorch_lightning")
    lightning.addHandler(records)  # wherever Lightning's own handler writes (it may propagate to pytest's instead)
    try:
        code = main(["train", "--config", str(_tiny_training_yaml(tmp_path, labels))])
    finally:
        lightning.removeHandler(records)
    out, err = capfd.readouterr()
    assert code == EXIT_OK, err
    shown = err + "\n".join(records.messages)
    assert "warning: two species and one per clip: trained as one output" in err  # kifaru's
    assert any(message.startswith("GPU available: False") for message in records.messages)  # Lightning's others
    for noise in ("litlogger", "LeafSpec", "TPU available", "Restoring states", "Loaded model weights"):
        assert noise not in shown, noise


def test_ctrl_c_during_training_exits_130_with_the_command_that_continues(tmp_path):
    """A real SIGINT to the whole command, as Ctrl-C in a terminal sends it (its worker processes
    too), once the first epoch's last.ckpt is written. The command it prints continues the run."""
    import os
    import shlex
    import signal
    import subprocess
    import sys
    import time

    import torch

    labels = write_training_set(tmp_path / "clips", clips_per_class=3, n_frames=4)
    config = _tiny_training_yaml(tmp_path, labels, max_epochs=10_000, early_stopping_config=None, num_workers=1)
    process = subprocess.Popen(
        [sys.executable, "-m", "kifaru", "train", "--config", str(config)], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    last = tmp_path / "out" / "version_0" / "checkpoints" / "last.ckpt"
    try:
        deadline = time.monotonic() + 240
        while not last.is_file():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no last.ckpt in time"
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "Detected KeyboardInterrupt" not in err, err
    assert "training interrupted (Ctrl-C) after " in err
    command = err.rstrip().splitlines()[-1].strip()
    assert shlex.split(command) == ["kifaru", "train", "--config", str(config), "--resume-from", str(last)]
    interrupted = torch.load(last, weights_only=False)

    # The command, with a number of epochs to stop at, continues from there in a new version folder
    # (without worker processes, whose start would only make the test slower).
    assert main([*shlex.split(command)[1:], "--max-epochs", str(interrupted["epoch"] + 2), "--num-workers", "0"]) == EXIT_OK
    resumed = torch.load(tmp_path / "out" / "version_1" / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["epoch"] == interrupted["epoch"] + 1 and resumed["global_step"] > interrupted["global_step"]
    assert (tmp_path / "out" / "version_1" / "time_distributed.ckpt").is_file()


def test_ctrl_c_before_training_starts_keeps_no_version_folder_and_says_so(tmp_path, capsys, monkeypatch):
    import kifaru.train.data

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    labels = write_training_set(tmp_path / "clips", clips_per_class=3, n_frames=4)
    monkeypatch.setattr(kifaru.train.data, "cache_clips", interrupted)  # Ctrl-C while the clips are read
    assert main(["train", "--config", str(_tiny_training_yaml(tmp_path, labels))]) == 130
    assert "training interrupted (Ctrl-C) before its first step: nothing to continue from" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("version_*"))


def test_train_help_says_that_labels_are_required_unless_the_config_file_gives_them(capsys):
    assert main(["train", "--help"]) == EXIT_OK
    help_text = capsys.readouterr().out
    assert help_text.startswith("usage: kifaru train (--labels LABELS.csv | --config FILE.yaml) [options]")
    required = help_text.split("required:", 1)[1].split("options:", 1)[0]
    assert "--labels LABELS.csv" in required and "required unless --config gives train_config.labels" in " ".join(required.split())
