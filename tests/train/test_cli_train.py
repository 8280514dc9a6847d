import json

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
    assert kifaru.predict_model.__module__ == "kifaru.predict"


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
