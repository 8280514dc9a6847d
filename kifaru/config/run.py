"""PredictConfig and TrainConfig: the fields and pure rules of zamba 2.7.2's.

Only what can be checked without touching files, hardware or the network is checked here; the
predict and train commands resolve paths, devices and weights in an explicit step.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Optional, Union

from pydantic import AfterValidator, Field, field_validator, model_validator

from kifaru.config.base import StrictConfig, did_you_mean
from kifaru.models.registry import DEFAULT_VIDEO_MODEL, official_video_model_names

# The official zamba video models, as the model registry declares them (kifaru.models.registry).
OFFICIAL_VIDEO_MODELS = official_video_model_names()


class WeightRegion(StrEnum):
    """A bucket region. A StrEnum, so that a member is its value wherever it goes (``str()``, YAML)."""

    us = "us"
    eu = "eu"
    asia = "asia"


def _check_model_name(name: Optional[str]) -> Optional[str]:
    if name is not None and name not in OFFICIAL_VIDEO_MODELS:
        raise ValueError(
            f"unknown model_name '{name}'{did_you_mean(name, set(OFFICIAL_VIDEO_MODELS))}; "
            f"valid: {', '.join(OFFICIAL_VIDEO_MODELS)}"
        )
    return name


def _needs_model_name_or_checkpoint(config: Any) -> Any:
    if config.model_name is None and config.checkpoint is None:
        raise ValueError("give model_name or checkpoint")
    return config


ModelName = Annotated[Optional[str], AfterValidator(_check_model_name)]


class PhotosChoice(StrEnum):
    """What ``kifaru predict`` does with the photos of a data_dir that also holds videos."""

    image = "image"  # classify them with an image model in the same run (kifaru image predict)
    skip = "skip"  # leave them out, as zamba predict does


class Preset(StrEnum):
    """How much ``kifaru predict`` computes (docs/fast-mode.md)."""

    exact = "exact"  # what zamba computes: the detector on every planned frame, the classifier on every clip
    fast = "fast"  # a cheap screen first; clips in which it finds no animal are decided by the detector


class PredictConfig(StrictConfig):
    data_dir: Optional[Path] = None
    filepaths: Optional[Path] = None
    checkpoint: Optional[Path] = None
    model_name: ModelName = DEFAULT_VIDEO_MODEL
    gpus: Optional[int] = Field(None, ge=0)
    num_workers: int = Field(3, ge=0)
    batch_size: int = Field(2, gt=0)
    save: bool = True
    save_dir: Optional[Path] = None
    overwrite: bool = False
    dry_run: bool = False
    proba_threshold: Optional[float] = None
    output_class_names: bool = False
    # Validated so that the default too is the plain value (use_enum_values skips unvalidated defaults).
    weight_download_region: WeightRegion = Field(WeightRegion.us, validate_default=True)
    skip_load_validation: bool = False
    model_cache_dir: Optional[Path] = None
    deterministic: bool = False
    # kifaru's: photos found in data_dir beside the videos (None: refused, saying how to run both).
    photos: Optional[PhotosChoice] = Field(None, validate_default=True)
    preset: Preset = Field(Preset.exact, validate_default=True)  # kifaru's

    @field_validator("proba_threshold")
    @classmethod
    def _threshold_in_open_unit_interval(cls, value: Optional[float]) -> Optional[float]:
        if value is not None and not 0 < value < 1:
            raise ValueError(f"proba_threshold must be between 0 and 1 (exclusive), got {value}")
        return value

    _needs_a_model = model_validator(mode="after")(_needs_model_name_or_checkpoint)


class BackboneFinetuneConfig(StrictConfig):
    unfreeze_backbone_at_epoch: Optional[int] = 5
    backbone_initial_ratio_lr: Optional[float] = 0.01
    multiplier: Optional[Union[int, float]] = 1
    pre_train_bn: Optional[bool] = False
    train_bn: Optional[bool] = False
    verbose: Optional[bool] = True


_MONITOR_MODE = {"val_macro_f1": "max", "val_loss": "min"}


class EarlyStoppingConfig(StrictConfig):
    monitor: str = "val_macro_f1"
    patience: int = Field(5, ge=0)
    verbose: bool = True
    mode: Optional[str] = None

    @model_validator(mode="after")
    def _mode_matches_monitor(self) -> "EarlyStoppingConfig":
        if self.monitor not in _MONITOR_MODE:
            raise ValueError(f"monitor must be one of {', '.join(_MONITOR_MODE)}, got '{self.monitor}'")
        expected = _MONITOR_MODE[self.monitor]
        if self.mode is None:
            object.__setattr__(self, "mode", expected)
        elif self.mode != expected:
            raise ValueError(f"mode '{self.mode}' is wrong for monitor {self.monitor}: use '{expected}'")
        return self


class SchedulerConfig(StrictConfig):
    scheduler: Optional[str] = None
    scheduler_params: Optional[dict[str, Any]] = None


class CheckpointingConfig(StrictConfig):
    """kifaru: which training checkpoints are kept in ``version_N/checkpoints/`` (to resume from)."""

    monitor: Optional[str] = None  # None: early stopping's monitor, else val_macro_f1
    every_n_epochs: Optional[int] = Field(None, gt=0)  # also keep one every N epochs
    keep: int = Field(3, ge=1)  # of those periodic ones, the latest K


class TrainConfig(StrictConfig):
    # A CSV file, or the rows themselves: records, or a pandas DataFrame (as zamba takes), kept as records.
    labels: Union[Path, list[dict[str, Any]]]
    data_dir: Optional[Path] = None
    checkpoint: Optional[Path] = None
    scheduler_config: Optional[Union[SchedulerConfig, str]] = "default"
    model_name: ModelName = DEFAULT_VIDEO_MODEL
    dry_run: Union[bool, int] = False
    batch_size: int = Field(2, gt=0)
    auto_lr_find: bool = False
    backbone_finetune_config: Optional[BackboneFinetuneConfig] = BackboneFinetuneConfig()
    gpus: Optional[int] = Field(None, ge=0)
    num_workers: int = Field(3, ge=0)
    max_epochs: Optional[int] = Field(None, gt=0)
    early_stopping_config: Optional[EarlyStoppingConfig] = EarlyStoppingConfig()
    # Validated so that the default too is the plain value (use_enum_values skips unvalidated defaults).
    weight_download_region: WeightRegion = Field(WeightRegion.us, validate_default=True)
    split_proportions: Optional[dict[str, int]] = {"train": 3, "val": 1, "holdout": 1}
    save_dir: Optional[Path] = None
    overwrite: bool = False
    skip_load_validation: bool = False
    from_scratch: bool = False
    use_default_model_labels: Optional[bool] = None
    model_cache_dir: Optional[Path] = None

    # -- kifaru's runner (zamba's files never set these; zamba ignores them in hparams) --------
    lr: Optional[float] = Field(None, gt=0)  # None: the checkpoint's, else 1e-3 (zamba's default)
    optimizer: str = "Adam"  # a torch.optim class
    optimizer_params: dict[str, Any] = {}
    backbone: Optional[str] = None  # a timm model for a TimeDistributed network (new networks only)
    backbone_pretrained: bool = True  # ImageNet weights for a new backbone (fetched by timm)
    train_full_backbone: bool = False  # fine-tune all of the backbone, not only its last layers
    augmentations: list[Any] = []  # kifaru.train.augment: [{name: horizontal_flip, p: 0.5}, ...]
    checkpointing: CheckpointingConfig = CheckpointingConfig()
    resume_from: Optional[Path] = None  # a checkpoint in version_N/checkpoints/ (last.ckpt)
    accumulate_grad_batches: int = Field(1, ge=1)
    seed: Optional[int] = None
    loggers: list[str] = ["tensorboard"]  # tensorboard, csv
    cpu_processes: int = Field(1, ge=1)  # DDP over this many CPU processes when there is no GPU
    # A folder of clips that the trained model predicts when training ends (version_N/predictions/).
    predict_dir: Optional[Path] = None
    # Clips per holdout video in a second, multi-clip evaluation of the best weights (test_clip_*
    # and test_video_* metrics, kifaru.train.evaluate); 1: only the usual one-clip test_* metrics.
    holdout_clips_per_video: int = Field(1, ge=1)

    @field_validator("labels", mode="before")
    @classmethod
    def _data_frame_as_records(cls, value: Any) -> Any:
        if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a pandas DataFrame, without importing pandas
            return value.to_dict("records")
        return value

    @field_validator("augmentations")
    @classmethod
    def _known_augmentations(cls, value: list[Any]) -> list[Any]:
        from kifaru.train.augment import parse_augmentation

        return [parse_augmentation(item) for item in value]

    @field_validator("loggers")
    @classmethod
    def _known_loggers(cls, value: list[str]) -> list[str]:
        from kifaru.train.lightning_steps import LOGGERS

        for name in value:
            if name not in LOGGERS:
                raise ValueError(LOGGERS.unknown(name))
        return value

    @model_validator(mode="after")
    def _from_scratch_rules(self) -> "TrainConfig":
        if self.from_scratch and self.checkpoint is not None:
            raise ValueError("from_scratch trains a new network: give model_name, not checkpoint")
        if self.backbone is not None and not self.from_scratch:
            raise ValueError("backbone chooses the network of a new model: set from_scratch: true")
        return self

    @field_validator("scheduler_config")
    @classmethod
    def _scheduler_string_is_default(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "default":
            raise ValueError(f"scheduler_config must be 'default', null or a mapping, got '{value}'")
        return value

    @field_validator("split_proportions")
    @classmethod
    def _known_splits(cls, value: Optional[dict[str, int]]) -> Optional[dict[str, int]]:
        if value is not None:
            unknown = set(value) - {"train", "val", "holdout"}
            if unknown:
                raise ValueError(f"split_proportions keys must be train, val, holdout; got {sorted(unknown)}")
        return value

    _needs_a_model = model_validator(mode="after")(_needs_model_name_or_checkpoint)
