"""Configuration: strict pydantic models, loaded from and dumped to zamba-layout YAML."""

from kifaru.config.files import KifaruConfig, dump_config, load_config_file, validate_config
from kifaru.config.run import PredictConfig, TrainConfig
from kifaru.config.video import (
    EARLY_BIAS_FPS,
    EARLY_BIAS_FRAME_INDICES,
    FillMode,
    MegadetectorLiteConfig,
    VideoLoaderConfig,
    resolve_cache_dir,
)

__all__ = [
    "EARLY_BIAS_FPS",
    "EARLY_BIAS_FRAME_INDICES",
    "FillMode",
    "KifaruConfig",
    "MegadetectorLiteConfig",
    "PredictConfig",
    "TrainConfig",
    "VideoLoaderConfig",
    "dump_config",
    "load_config_file",
    "resolve_cache_dir",
    "validate_config",
]
