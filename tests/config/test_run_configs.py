"""PredictConfig and TrainConfig: defaults and pure rules (spec sections 5 and 6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kifaru.config import PredictConfig, TrainConfig
from kifaru.config.run import (
    OFFICIAL_VIDEO_MODELS,
    BackboneFinetuneConfig,
    EarlyStoppingConfig,
    SchedulerConfig,
)


def messages(excinfo: pytest.ExceptionInfo) -> str:
    """Error messages only (str(ValidationError) also echoes the input)."""
    return " | ".join(error["msg"] for error in excinfo.value.errors())


def train(**fields) -> TrainConfig:
    return TrainConfig(labels="labels.csv", **fields)


# --- defaults ---------------------------------------------------------------------------------

PREDICT_DEFAULTS = {
    "data_dir": None,
    "filepaths": None,
    "checkpoint": None,
    "model_name": "time_distributed",
    "gpus": None,
    "num_workers": 3,
    "batch_size": 2,
    "save": True,
    "save_dir": None,
    "overwrite": False,
    "dry_run": False,
    "proba_threshold": None,
    "output_class_names": False,
    "weight_download_region": "us",
    "skip_load_validation": False,
    "model_cache_dir": None,
    "deterministic": False,
    "photos": None,  # kifaru's: photos beside the videos in data_dir are refused until chosen
    "preset": "exact",  # kifaru's: what zamba computes (fast: docs/fast-mode.md)
}


def test_predict_config_defaults():
    assert PredictConfig().model_dump(mode="json") == PREDICT_DEFAULTS


@pytest.mark.parametrize("field, default", sorted(PREDICT_DEFAULTS.items()))
def test_each_predict_default(field, default):
    assert getattr(PredictConfig(), field) == default


TRAIN_DEFAULTS = {
    "labels": "labels.csv",
    "data_dir": None,
    "checkpoint": None,
    "scheduler_config": "default",
    "model_name": "time_distributed",
    "dry_run": False,
    "batch_size": 2,
    "auto_lr_find": False,
    "backbone_finetune_config": {
        "unfreeze_backbone_at_epoch": 5,
        "backbone_initial_ratio_lr": 0.01,
        "multiplier": 1,
        "pre_train_bn": False,
        "train_bn": False,
        "verbose": True,
    },
    "gpus": None,
    "num_workers": 3,
    "max_epochs": None,
    "early_stopping_config": {
        "monitor": "val_macro_f1",
        "patience": 5,
        "verbose": True,
        "mode": "max",
    },
    "weight_download_region": "us",
    "split_proportions": {"train": 3, "val": 1, "holdout": 1},
    "save_dir": None,
    "overwrite": False,
    "skip_load_validation": False,
    "from_scratch": False,
    "use_default_model_labels": None,
    "model_cache_dir": None,
}


def test_train_config_defaults():
    dumped = train().model_dump(mode="json")
    assert {k: v for k, v in dumped.items() if k in TRAIN_DEFAULTS} == TRAIN_DEFAULTS
    assert {k: v for k, v in dumped.items() if k not in TRAIN_DEFAULTS} == KIFARU_TRAIN_DEFAULTS


# kifaru's runner fields: their defaults train as zamba does.
KIFARU_TRAIN_DEFAULTS = {
    "lr": None,
    "optimizer": "Adam",
    "optimizer_params": {},
    "backbone": None,
    "backbone_pretrained": True,
    "train_full_backbone": False,
    "augmentations": [],
    "checkpointing": {"monitor": None, "every_n_epochs": None, "keep": 3},
    "resume_from": None,
    "accumulate_grad_batches": 1,
    "seed": None,
    "loggers": ["tensorboard"],
    "cpu_processes": 1,
    "predict_dir": None,
    "holdout_clips_per_video": 1,
}


@pytest.mark.parametrize("field", sorted(set(TRAIN_DEFAULTS) - {"labels"}))
def test_each_train_default(field):
    value = getattr(train(), field)
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    assert value == TRAIN_DEFAULTS[field]


def test_train_labels_are_a_path():
    assert train().labels == Path("labels.csv")


def test_train_config_requires_labels():
    with pytest.raises(ValidationError) as excinfo:
        TrainConfig()
    assert ("labels",) in [error["loc"] for error in excinfo.value.errors()]


def test_default_train_configs_do_not_share_mutable_split_proportions():
    first, second = train(), train()
    assert first.split_proportions == second.split_proportions
    assert first.split_proportions is not second.split_proportions


# --- model_name / checkpoint ------------------------------------------------------------------

def test_predict_without_model_name_or_checkpoint_is_an_error():
    with pytest.raises(ValidationError) as excinfo:
        PredictConfig(model_name=None)
    message = messages(excinfo)
    assert "model_name" in message and "checkpoint" in message


def test_train_without_model_name_or_checkpoint_is_an_error():
    with pytest.raises(ValidationError) as excinfo:
        train(model_name=None)
    message = messages(excinfo)
    assert "model_name" in message and "checkpoint" in message


@pytest.mark.parametrize("config_class", [PredictConfig, train])
def test_checkpoint_alone_is_enough(config_class):
    config = config_class(model_name=None, checkpoint="my_model.ckpt")
    assert config.checkpoint == Path("my_model.ckpt")
    assert config.model_name is None


@pytest.mark.parametrize("config_class", [PredictConfig, train])
@pytest.mark.parametrize("name", OFFICIAL_VIDEO_MODELS)
def test_official_model_names_are_accepted(config_class, name):
    assert config_class(model_name=name).model_name == name


def test_official_model_names_are_the_four_of_the_spec():
    assert set(OFFICIAL_VIDEO_MODELS) == {"time_distributed", "european", "blank_nonblank", "slowfast"}


@pytest.mark.parametrize("config_class", [PredictConfig, train])
def test_unknown_model_name_is_rejected_with_a_suggestion(config_class):
    with pytest.raises(ValidationError) as excinfo:
        config_class(model_name="time_distributd")
    error = excinfo.value.errors()[0]
    assert error["loc"] == ("model_name",)
    assert "'time_distributd'" in error["msg"]
    assert "did you mean 'time_distributed'" in error["msg"]


def test_unknown_model_name_with_nothing_close_lists_the_valid_names():
    with pytest.raises(ValidationError) as excinfo:
        PredictConfig(model_name="resnet")
    message = messages(excinfo)
    assert "did you mean" not in message
    for name in OFFICIAL_VIDEO_MODELS:
        assert name in message


# --- proba_threshold --------------------------------------------------------------------------

@pytest.mark.parametrize("threshold", [0, 1, 1.5, -0.1])
def test_proba_threshold_outside_open_unit_interval_is_rejected(threshold):
    with pytest.raises(ValidationError) as excinfo:
        PredictConfig(proba_threshold=threshold)
    assert excinfo.value.errors()[0]["loc"] == ("proba_threshold",)
    assert "proba_threshold" in messages(excinfo)


@pytest.mark.parametrize("threshold", [0.5, 0.001, 0.999])
def test_proba_threshold_inside_open_unit_interval_is_accepted(threshold):
    assert PredictConfig(proba_threshold=threshold).proba_threshold == threshold


# --- weight_download_region -------------------------------------------------------------------

@pytest.mark.parametrize("config_class", [PredictConfig, train])
@pytest.mark.parametrize("region", ["us", "eu", "asia"])
def test_weight_download_regions_are_accepted(config_class, region):
    assert config_class(weight_download_region=region).weight_download_region == region


@pytest.mark.parametrize("config_class", [PredictConfig, train])
@pytest.mark.parametrize("region", ["ap", "europe", "US", ""])
def test_other_weight_download_regions_are_rejected(config_class, region):
    with pytest.raises(ValidationError) as excinfo:
        config_class(weight_download_region=region)
    assert excinfo.value.errors()[0]["loc"] == ("weight_download_region",)


# --- early stopping ---------------------------------------------------------------------------

@pytest.mark.parametrize("monitor, mode", [("val_macro_f1", "max"), ("val_loss", "min")])
def test_early_stopping_mode_is_inferred_from_monitor(monitor, mode):
    assert EarlyStoppingConfig(monitor=monitor).mode == mode
    assert train(early_stopping_config={"monitor": monitor}).early_stopping_config.mode == mode


@pytest.mark.parametrize("monitor, mode", [("val_macro_f1", "max"), ("val_loss", "min")])
def test_early_stopping_matching_explicit_mode_is_accepted(monitor, mode):
    assert EarlyStoppingConfig(monitor=monitor, mode=mode).mode == mode


@pytest.mark.parametrize("monitor, wrong", [("val_macro_f1", "min"), ("val_loss", "max")])
def test_early_stopping_wrong_mode_is_rejected(monitor, wrong):
    with pytest.raises(ValidationError) as excinfo:
        train(early_stopping_config={"monitor": monitor, "mode": wrong})
    error = excinfo.value.errors()[0]
    assert error["loc"] == ("early_stopping_config",)
    assert wrong in error["msg"] and monitor in error["msg"]


def test_early_stopping_unknown_monitor_is_rejected():
    with pytest.raises(ValidationError) as excinfo:
        EarlyStoppingConfig(monitor="val_accuracy")
    assert "val_accuracy" in messages(excinfo)


def test_early_stopping_can_be_switched_off():
    assert train(early_stopping_config=None).early_stopping_config is None


def test_early_stopping_patience_is_kept():
    assert train(early_stopping_config={"patience": 2}).early_stopping_config.patience == 2


# --- scheduler_config -------------------------------------------------------------------------

def test_scheduler_config_default_string():
    assert train(scheduler_config="default").scheduler_config == "default"


def test_scheduler_config_null_means_no_scheduler():
    assert train(scheduler_config=None).scheduler_config is None


def test_scheduler_config_mapping():
    config = train(
        scheduler_config={"scheduler": "MultiStepLR", "scheduler_params": {"milestones": [3], "gamma": 0.5}}
    )
    assert isinstance(config.scheduler_config, SchedulerConfig)
    assert config.scheduler_config.scheduler == "MultiStepLR"
    assert config.scheduler_config.scheduler_params == {"milestones": [3], "gamma": 0.5}


def test_scheduler_config_mapping_without_params():
    config = train(scheduler_config={"scheduler": "StepLR"})
    assert config.scheduler_config.scheduler == "StepLR"
    assert config.scheduler_config.scheduler_params is None


def test_scheduler_config_mapping_without_scheduler_means_none_like_zamba():
    config = train(scheduler_config={"scheduler_params": {"gamma": 0.5}})
    assert config.scheduler_config.scheduler is None
    assert config.scheduler_config.scheduler_params == {"gamma": 0.5}


@pytest.mark.parametrize("value", ["cosine", "none", ""])
def test_scheduler_config_other_strings_are_rejected(value):
    with pytest.raises(ValidationError) as excinfo:
        train(scheduler_config=value)
    assert "default" in messages(excinfo)


def test_scheduler_config_mapping_with_unknown_key_is_rejected():
    with pytest.raises(ValidationError) as excinfo:
        train(scheduler_config={"schedular": "StepLR"})
    assert "did you mean 'scheduler'" in messages(excinfo)


# --- split_proportions ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "proportions",
    [{"train": 3, "val": 1, "holdout": 1}, {"train": 4, "val": 1, "holdout": 0}, {"train": 1, "val": 1}],
)
def test_split_proportions_with_known_keys_are_accepted(proportions):
    assert train(split_proportions=proportions).split_proportions == proportions


def test_split_proportions_null_is_accepted():
    assert train(split_proportions=None).split_proportions is None


@pytest.mark.parametrize("bad_key", ["test", "validation", "Train"])
def test_split_proportions_unknown_key_is_rejected(bad_key):
    with pytest.raises(ValidationError) as excinfo:
        train(split_proportions={"train": 3, bad_key: 1})
    error = excinfo.value.errors()[0]
    assert error["loc"] == ("split_proportions",)
    assert bad_key in error["msg"]


# --- other checks -----------------------------------------------------------------------------

def test_backbone_finetune_config_partial_mapping_keeps_other_defaults():
    config = train(backbone_finetune_config={"unfreeze_backbone_at_epoch": 2})
    assert config.backbone_finetune_config == BackboneFinetuneConfig(unfreeze_backbone_at_epoch=2)
    assert config.backbone_finetune_config.backbone_initial_ratio_lr == 0.01


@pytest.mark.parametrize("config_class, wrong, right", [
    (PredictConfig, "batch_sise", "batch_size"),
    (PredictConfig, "proba_treshold", "proba_threshold"),
    (train, "max_epoch", "max_epochs"),
    (train, "split_proportion", "split_proportions"),
])
def test_misspelled_run_key_suggests_the_nearest_field(config_class, wrong, right):
    with pytest.raises(ValidationError) as excinfo:
        config_class(**{wrong: 1})
    assert f"did you mean '{right}'" in messages(excinfo)


@pytest.mark.parametrize("field, value", [("batch_size", 0), ("num_workers", -1), ("gpus", -1)])
def test_predict_counts_out_of_range_are_rejected(field, value):
    with pytest.raises(ValidationError) as excinfo:
        PredictConfig(**{field: value})
    assert excinfo.value.errors()[0]["loc"] == (field,)


def test_run_configs_are_immutable():
    config = PredictConfig()
    with pytest.raises(ValidationError):
        config.batch_size = 8
    assert config.model_copy(update={"batch_size": 8}).batch_size == 8
    assert config.batch_size == 2
