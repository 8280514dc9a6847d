"""kifaru: find the animals in camera-trap videos (zamba-compatible)."""

from kifaru.config import (
    KifaruConfig,
    MegadetectorLiteConfig,
    PredictConfig,
    TrainConfig,
    VideoLoaderConfig,
    load_config_file,
)
from kifaru.exceptions import (
    CheckpointError,
    ConfigError,
    DecodeError,
    EmptyMediaError,
    FrameSelectionWarning,
    KifaruError,
    MediaError,
    MediaNotFoundError,
    NotAVideoError,
    PartialDecodeWarning,
    UnsupportedOptionError,
)
from kifaru.video import find_media, load_video, load_video_frames

__version__ = "0.1.0"

# The runs, imported when first used: they bring in PyTorch, which `import kifaru` should not.
_RUNS = {"detect_files": "kifaru.runs.detect", "predict_model": "kifaru.runs.predict", "train_model": "kifaru.train.runner"}


def __getattr__(name: str):
    if name in _RUNS:
        import importlib

        return getattr(importlib.import_module(_RUNS[name]), name)
    raise AttributeError(f"module 'kifaru' has no attribute '{name}'")


__all__ = [
    "CheckpointError",
    "ConfigError",
    "DecodeError",
    "EmptyMediaError",
    "FrameSelectionWarning",
    "KifaruConfig",
    "KifaruError",
    "MediaError",
    "MediaNotFoundError",
    "MegadetectorLiteConfig",
    "NotAVideoError",
    "PartialDecodeWarning",
    "PredictConfig",
    "TrainConfig",
    "UnsupportedOptionError",
    "VideoLoaderConfig",
    "find_media",
    "load_config_file",
    "load_video",
    "load_video_frames",
    "predict_model",
    "train_model",
]
