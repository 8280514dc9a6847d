"""ImagePredictConfig: the fields, defaults and pure rules of zamba 2.7.2's
``ImageClassificationPredictConfig`` (``zamba image predict``), plus kifaru's own (the detector,
bursts). Paths, devices and weights are resolved in an explicit step
(kifaru.runs.image_predict.resolve_image_run), never here.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

from pydantic import AfterValidator, Field, field_validator, model_validator

from kifaru.config.base import StrictConfig
from kifaru.config.run import WeightRegion
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


class ImageConfigFile(StrictConfig):
    """A YAML file of the image commands, as zamba's: a ``predict_config`` section."""

    predict_config: Optional[ImagePredictConfig] = None
