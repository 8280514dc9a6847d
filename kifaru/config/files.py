"""YAML config files: the zamba layout (video_loader_config, predict_config, train_config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import ValidationError

from kifaru.config.base import StrictConfig
from kifaru.config.run import PredictConfig, TrainConfig
from kifaru.config.video import VideoLoaderConfig
from kifaru.exceptions import ConfigError


class KifaruConfig(StrictConfig):
    """One YAML file: up to three sections, each optional."""

    video_loader_config: Optional[VideoLoaderConfig] = None
    predict_config: Optional[PredictConfig] = None
    train_config: Optional[TrainConfig] = None


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem: where it is (dotted field path) and what to do."""
    lines = [f"{source}: invalid configuration"]
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"  {location}: {message}")
    return "\n".join(lines)


def validate_config(data: dict[str, Any], source: str = "config") -> KifaruConfig:
    """Validate a mapping with the YAML layout; ConfigError names each bad field."""
    try:
        return KifaruConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


def read_config_mapping(path: str | Path) -> dict[str, Any]:
    """The raw mapping in a YAML config file, before validation (for merging overrides)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the config file ({error})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping with video_loader_config, predict_config and/or "
            f"train_config, got {type(data).__name__}"
        )
    return data


def load_config_file(path: str | Path) -> KifaruConfig:
    """Read and validate a YAML config file; ConfigError names the file and each bad field."""
    return validate_config(read_config_mapping(path), source=str(path))


def dump_config(config: StrictConfig) -> str:
    """YAML text of a config, with every resolved value (a file that loads back the same)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
