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
]
