"""Where a training run writes: ``save_dir/version_N/`` (or save_dir itself with overwrite) and the
names of its files, and zamba's ``train_configuration.yaml`` with the values used."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from kifaru.config.run import TrainConfig
from kifaru.config.video import VideoLoaderConfig

TRAIN_CONFIGURATION_YAML = "train_configuration.yaml"
FAILURES_CSV = "failures.csv"
SPLITS_CSV = "splits.csv"
PREDICTIONS_DIR = "predictions"  # predict_dir's outputs, in version_N/
CHECKPOINTS_DIR = "checkpoints"  # Lightning's checkpoints, in version_N/
LAST_CHECKPOINT = "last.ckpt"  # in CHECKPOINTS_DIR: written after every epoch and when training stops
# Set for DDP's worker processes, which run the command again: they must use rank 0's folder.
VERSION_DIR_ENV = "KIFARU_TRAIN_VERSION_DIR"


def save_dir_of(config: TrainConfig) -> Path:
    """save_dir, or the current folder as zamba's default."""
    return Path(config.save_dir) if config.save_dir is not None else Path.cwd()

def version_dir_of(config: TrainConfig) -> Path:
    """``save_dir/version_N`` (N one more than the largest there), or ``save_dir`` with overwrite."""
    inherited = os.environ.get(VERSION_DIR_ENV)
    if inherited and os.environ.get("LOCAL_RANK", "0") != "0":
        return Path(inherited)
    save_dir = save_dir_of(config)
    if config.overwrite:
        return save_dir
    numbers = [int(p.name[8:]) for p in save_dir.glob("version_*") if p.name[8:].isdigit()] if save_dir.is_dir() else []
    return save_dir / f"version_{max(numbers, default=-1) + 1}"

def create_version_dir(config: TrainConfig, planned: Path) -> tuple[Path, bool]:
    """Create ``planned`` (``version_dir_of``'s) and say whether this run created it: with overwrite
    it is save_dir, which may exist; else a new version_N, the next free one if another run
    took ``planned`` meanwhile, so that it never holds anything but this run's outputs."""
    if config.overwrite:
        planned.mkdir(parents=True, exist_ok=True)
        return planned, False
    while True:
        try:
            planned.mkdir(parents=True, exist_ok=False)
            return planned, True
        except FileExistsError:
            planned = version_dir_of(config)

def resolved_config(
    config: TrainConfig, hparams: dict[str, Any], gpus: int, kept_head: bool, has_split: bool, version_dir: Path
) -> TrainConfig:
    """The values used, as zamba records them in train_configuration.yaml: the scheduler behind
    "default", the GPUs, the model cache, whether the model's species were kept, the save_dir."""
    from kifaru.config.run import SchedulerConfig
    from kifaru.models.weights import model_cache_dir

    scheduler = SchedulerConfig(scheduler=hparams.get("scheduler"), scheduler_params=hparams.get("scheduler_params"))
    return config.model_copy(
        update={
            "scheduler_config": scheduler,
            "gpus": gpus,
            "model_cache_dir": model_cache_dir(config.model_cache_dir),
            "use_default_model_labels": kept_head,
            "split_proportions": None if has_split else config.split_proportions,
            "save_dir": Path(config.save_dir) if config.save_dir is not None else version_dir.parent,
        }
    )

def configuration_yaml(config: TrainConfig, loader: VideoLoaderConfig, model_class: str, species: list[str], lr: float) -> str:
    """zamba's train_configuration.yaml: the configs and what training started from."""
    import yaml

    configuration = {
        "git_hash": git_hash(),
        "model_class": model_class,
        "species": list(species),
        "starting_learning_rate": float(lr),
        "train_config": config.model_dump(mode="json", exclude={"labels"}),
        "training_start_time": datetime.now(timezone.utc).replace(tzinfo=None).isoformat(),
        "video_loader_config": loader.model_dump(mode="json"),
    }
    return yaml.safe_dump(configuration, sort_keys=True)

def git_hash() -> Optional[str]:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None
