"""zamba's official video models, for the predict and train pipelines: their registry entries and
their checkpoints, fetched from DrivenData's buckets (or taken from a local copy) and checked.

    entry = video_model_entry("time_distributed")
    entry.species, entry.model_class, entry.default_video_loader_config()
    path = official_checkpoint("time_distributed", region=config.weight_download_region,
                               cache_dir=config.model_cache_dir)
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from kifaru.models.registry import (
    VideoModelEntry,
    default_model_name,
    list_video_models,
    video_model_entry,
)
from kifaru.models.s3 import normalize_region
from kifaru.models.weights import Progress, resolve_weights

__all__ = [
    "VideoModelEntry",
    "default_model_name",
    "list_video_models",
    "official_checkpoint",
    "video_model_entry",
]


def official_checkpoint(
    name: str,
    *,
    region: Union[str, object] = "us",
    cache_dir: Optional[Path] = None,
    download: bool = True,
    progress: Optional[Progress] = None,
) -> Path:
    """The checked checkpoint file of the official video model ``name``.

    Taken from ``KIFARU_<NAME>_WEIGHTS`` when set (checked for model class and species), else from
    the model cache (``cache_dir``, i.e. PredictConfig.model_cache_dir; ``None``: ``MODEL_CACHE_DIR``,
    else the user cache dir), else downloaded from the ``region``'s bucket (``us``, ``eu``,
    ``asia``; or the ``KIFARU_MODELS_URL`` mirror) when ``download`` is true.

    Raises ``ConfigError`` (not a video model, unknown region), ``WeightsNotFoundError`` (not here
    and ``download`` is false), ``DownloadError`` (no network: the message names the URL and the
    offline alternatives), ``IntegrityError`` or ``CheckpointError`` (not the official file).
    """
    entry = video_model_entry(name)
    return resolve_weights(
        entry, download=download, progress=progress, region=normalize_region(region), cache_dir=cache_dir
    )
