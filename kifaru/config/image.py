"""ImagePredictConfig and ImageTrainConfig: the fields, defaults and pure rules of zamba 2.7.2's
``ImageClassificationPredictConfig`` (``zamba image predict``) and
``ImageClassificationTrainingConfig`` (``zamba image train``), plus kifaru's own (the detector,
bursts, group-held-out splits, the runner's checkpoints and loggers). Paths, devices and weights
are resolved in an explicit step (kifaru.runs.image_predict.resolve_image_run,
kifaru.train.image_runner), never here.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, Field, field_validator, model_validator

from kifaru.config.base import StrictConfig
from kifaru.config.run import CheckpointingConfig, SchedulerConfig, WeightRegion
from kifaru.models.registry import DEFAULT_IMAGE_MODEL


class ResultsFormat(StrEnum):
    csv = "csv"
    megadetector = "megadetector"


class Aggregation(StrEnum):
    """How a sequence's photos make one event (kifaru.images.sequences)."""

    mean = "mean"
    weighted_mean = "weighted_mean"  # weighted by each photo's highest detection confidence
    max = "max"


def _check_image_model(name: Optional[str]) -> Optional[str]:
    from kifaru.models.registry import image_model_entry

    if name is not None:
        image_model_entry(name)  # ConfigError naming the image models
    return name


def _check_detector(name: str) -> str:
    from kifaru.detection.registry import DETECTORS

    if name not in DETECTORS:
        raise ValueError(DETECTORS.unknown(name))
    return name


class ImagePredictConfig(StrictConfig):
    data_dir: Optional[Path] = None
    filepaths: Optional[Path] = None
    checkpoint: Optional[Path] = None
    model_name: Annotated[Optional[str], AfterValidator(_check_image_model)] = DEFAULT_IMAGE_MODEL
    save: bool = True
    save_dir: Optional[Path] = None
    overwrite: bool = False
    crop_images: bool = True
    detections_threshold: float = 0.2
    gpus: Optional[int] = Field(None, ge=0)
    num_workers: int = Field(3, ge=0)
    image_size: Optional[int] = Field(None, gt=0)
    # Validated so that the default too is the plain value (use_enum_values skips unvalidated defaults).
    results_file_format: ResultsFormat = Field(ResultsFormat.csv, validate_default=True)
    results_file_name: Optional[Path] = Path("zamba_predictions.csv")
    model_cache_dir: Optional[Path] = None
    weight_download_region: WeightRegion = Field(WeightRegion.us, validate_default=True)
    deterministic: bool = False

    # -- kifaru's ------------------------------------------------------------------------------
    detector: Annotated[str, AfterValidator(_check_detector)] = "megadetector_lite"
    batch_size: int = Field(8, gt=0)  # crops per network call
    # Bursts: photos grouped into sequences (a seq_id column of the filepaths CSV, else camera
    # folder and EXIF time gaps) and each sequence classified as one event.
    sequences: bool = False
    sequence_gap_seconds: float = Field(60.0, gt=0)
    aggregation: Aggregation = Field(Aggregation.mean, validate_default=True)

    @field_validator("detections_threshold")
    @classmethod
    def _threshold_in_open_unit_interval(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError(f"detections_threshold must be between 0 and 1 (exclusive), got {value}")
        return value

    @model_validator(mode="after")
    def _needs_a_model(self) -> "ImagePredictConfig":
        if self.model_name is None and self.checkpoint is None:
            raise ValueError("give model_name or checkpoint")
        return self

    @property
    def results_path_name(self) -> str:
        """The predictions file's name: results_file_name, with .json for MegaDetector output (as zamba)."""
        name = Path(self.results_file_name or "zamba_predictions.csv")
        return name.with_suffix(".json" if self.results_file_format == ResultsFormat.megadetector else ".csv").name


class LabelsFormat(StrEnum):
    """zamba's ``labels_format`` (for JSON labels)."""

    coco = "coco"
    megadetector = "megadetector"


SPLITS = ("train", "val", "test")


class ImageTrainConfig(StrictConfig):
    data_dir: Path
    labels: Path  # a CSV: filepath + label rows, or one-hot class columns, per photo or per seq_id
    labels_format: LabelsFormat = Field(LabelsFormat.coco, validate_default=True)
    checkpoint: Optional[Path] = None
    model_name: Annotated[Optional[str], AfterValidator(_check_image_model)] = DEFAULT_IMAGE_MODEL
    name: Optional[str] = "image-classification"
    max_epochs: int = Field(100, gt=0)
    lr: Optional[float] = Field(None, gt=0)  # None: Lightning's learning-rate finder, as zamba
    image_size: Optional[int] = Field(None, gt=0)
    batch_size: Optional[int] = Field(16, gt=0)  # null: zamba searches the largest; kifaru refuses it (image_runner)
    accumulated_batch_size: Optional[int] = Field(None, gt=0)
    early_stopping_patience: int = Field(3, ge=0)
    extra_train_augmentations: bool = False
    num_workers: int = Field(2, ge=0)
    accelerator: Optional[str] = None  # "gpu" or "cpu"; None: a GPU if there is one
    devices: Any = "auto"
    crop_images: bool = True
    detections_threshold: float = 0.2
    checkpoint_path: Optional[Path] = None  # Lightning's checkpoints (default: save_dir/checkpoints)
    weighted_loss: bool = False
    mlflow_tracking_uri: Optional[str] = "./mlruns"
    from_scratch: bool = False
    use_default_model_labels: Optional[bool] = None
    scheduler_config: Optional[Union[SchedulerConfig, str]] = "default"
    split_proportions: Optional[dict[str, int]] = {"train": 3, "val": 1, "test": 1}
    model_cache_dir: Optional[Path] = None
    cache_dir: Optional[Path] = None  # where a run keeps its crops while it trains (default: the user cache)
    weight_download_region: WeightRegion = Field(WeightRegion.us, validate_default=True)
    species_in_label_order: Optional[list[str]] = None
    debug: Optional[int] = Field(None, gt=0)
    save_dir: Optional[Path] = None

    # -- kifaru's ------------------------------------------------------------------------------
    # Photos linked to the sequences the labels name (Hakuna Ma-data's metadata): a CSV with
    # filepath and seq_id (and any grouping column, such as season).
    sequence_files: Optional[Path] = None
    # Splits held out by this column's groups (season, site): no group in two splits. Without it,
    # photos of one sequence stay together.
    split_by: Optional[str] = None
    architecture: Optional[str] = None  # from_scratch: any timm network (default: the model's own)
    pretrained: bool = True  # from_scratch: timm's ImageNet weights for it (fetched by timm)
    detector: Annotated[str, AfterValidator(_check_detector)] = "megadetector_lite"
    # AdamW's weight decay. "zamba": zamba's 1 / (lr x batches per epoch), which shrinks the
    # weights by a factor e each epoch: on a set of a few hundred photos it wipes out what the
    # network learns (measured: docs/benchmarks.md), hence AdamW's usual 0.01 by default.
    weight_decay: Union[float, Literal["zamba"]] = 0.01
    optimizer: str = "AdamW"  # a torch.optim class (zamba's AdamW); weight_decay goes to it where it takes one
    optimizer_params: dict[str, Any] = {}
    # kifaru.train.augment, by name ([{name: color_jitter, brightness: 0.3}, ...]): applied to each
    # training crop after zamba's own (perspective, flip, rotation; extra_train_augmentations' too).
    augmentations: list[Any] = []
    aggregation: Aggregation = Field(Aggregation.mean, validate_default=True)  # sequence metrics
    overwrite: bool = False
    resume_from: Optional[Path] = None  # save_dir/checkpoints/last.ckpt of a stopped run
    checkpointing: CheckpointingConfig = CheckpointingConfig(monitor="val_loss")
    loggers: list[str] = ["tensorboard"]
    seed: Optional[int] = None

    @field_validator("detections_threshold")
    @classmethod
    def _threshold_in_open_unit_interval(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError(f"detections_threshold must be between 0 and 1 (exclusive), got {value}")
        return value

    @field_validator("split_proportions")
    @classmethod
    def _known_splits(cls, value: Optional[dict[str, int]]) -> Optional[dict[str, int]]:
        if value is not None:
            unknown = set(value) - set(SPLITS)
            if unknown:
                raise ValueError(f"split_proportions keys must be {', '.join(SPLITS)}; got {sorted(unknown)}")
            if value.get("train", 0) <= 0:
                raise ValueError("split_proportions needs a train share above 0")
        return value

    @field_validator("scheduler_config")
    @classmethod
    def _scheduler_string_is_default(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "default":
            raise ValueError(f"scheduler_config must be 'default', null or a mapping, got '{value}'")
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
    def _model_rules(self) -> "ImageTrainConfig":
        if self.from_scratch and self.checkpoint is not None:
            raise ValueError("from_scratch trains a new network: give model_name (or architecture), not checkpoint")
        if self.architecture is not None and not self.from_scratch:
            raise ValueError("architecture chooses the network of a new model: set from_scratch: true")
        if self.model_name is None and self.checkpoint is None and self.architecture is None:
            raise ValueError("give model_name, checkpoint, or from_scratch with architecture")
        if self.checkpointing.monitor not in (None, "val_loss", "val_macro_f1"):
            raise ValueError(f"checkpointing.monitor must be val_loss or val_macro_f1 (it also decides early stopping), got '{self.checkpointing.monitor}'")
        if "weight_decay" in self.model_fields_set and "weight_decay" in self.optimizer_params:
            raise ValueError("weight_decay is given twice (weight_decay and optimizer_params.weight_decay): keep one")
        if self.accumulated_batch_size is not None and self.batch_size is not None and self.accumulated_batch_size < self.batch_size:
            raise ValueError(f"accumulated_batch_size ({self.accumulated_batch_size}) must be at least batch_size ({self.batch_size})")
        return self

    @property
    def accumulate_grad_batches(self) -> int:
        batch = self.batch_size or 1
        return max(1, (self.accumulated_batch_size or batch) // batch)


class ImageConfigFile(StrictConfig):
    """A YAML file of the image commands, as zamba's: a ``predict_config`` and/or ``train_config`` section."""

    predict_config: Optional[ImagePredictConfig] = None
    train_config: Optional[ImageTrainConfig] = None
