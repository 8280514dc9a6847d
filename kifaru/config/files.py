"""YAML config files: the zamba layout (video_loader_config, predict_config, train_config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

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


def format_problem(problem: Any) -> str:
    """One of pydantic's error dicts as a line: the dotted field path, what is wrong, and the
    value given (pydantic's own messages, e.g. "Input should be greater than 0", do not say it;
    kifaru's validators' messages do, and a mapping is not worth repeating)."""
    location = ".".join(str(part) for part in problem["loc"]) or "(top level)"
    message = problem["msg"].removeprefix("Value error, ")
    given = problem.get("input")
    if problem["type"] not in ("value_error", "missing") and not isinstance(given, dict) and "input" in problem:
        message += f" (got {given!r})"
    return f"  {location}: {message}"


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem: where it is (dotted field path), what to do and the value given."""
    return "\n".join([f"{source}: invalid configuration", *map(format_problem, error.errors())])


def validate_config(data: dict[str, Any], source: str = "config") -> KifaruConfig:
    """Validate a mapping with the YAML layout; ConfigError names each bad field."""
    try:
        return KifaruConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


def merge_config_mappings(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` on ``base``: mappings in both are merged field by field (a section, the detector's
    settings in it), anything else in ``top`` replaces what ``base`` has."""
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        merged[key] = merge_config_mappings(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return merged


def validate_layered_config(layers: Sequence[tuple[str, dict[str, Any]]], schema: type[StrictConfig] = KifaruConfig) -> Any:
    """Mappings with the YAML layout (``schema``: the video layout, or kifaru.config.image's),
    each on top of the ones before (e.g. a file, then --set, then command-line options),
    validated together. ConfigError names, for each problem, the
    layer it comes from (``source``, e.g. the file's name or the option) rather than all of them:
    the first layer after which the same problem, with the same value, is there to the end."""
    merged: dict[str, Any] = {}
    cumulative = []
    for source, mapping in layers:
        merged = merge_config_mappings(merged, mapping)
        cumulative.append((source, merged))
    try:
        return schema.model_validate(merged)
    except ValidationError as error:
        final = error.errors()

    def problems(data: dict[str, Any]) -> set[tuple]:
        try:
            schema.model_validate(data)
        except ValidationError as error:
            return {_problem_key(problem) for problem in error.errors()}
        return set()

    found = [problems(data) for _, data in cumulative[:-1]] + [{_problem_key(problem) for problem in final}]
    by_layer: dict[int, list[str]] = {}
    for problem in final:
        key = _problem_key(problem)
        first = len(found) - 1
        while first > 0 and key in found[first - 1]:
            first -= 1
        by_layer.setdefault(first, []).append(format_problem(problem))
    raise ConfigError(
        "\n".join(
            line
            for layer, lines in sorted(by_layer.items())
            for line in (f"{cumulative[layer][0]}: invalid configuration", *lines)
        )
    ) from None


def override_layers(overrides: dict[str, Any], name: str, section: str = "video_loader_config") -> list[tuple[str, dict[str, Any]]]:
    """Each of ``overrides`` (fields of ``section``) as a layer for validate_layered_config,
    named as it is given: ``--set fps=2`` for ``name`` "--set"."""
    return [(f"{name} {field}={_as_yaml(value)}", {section: {field: value}}) for field, value in overrides.items()]


def _as_yaml(value: Any) -> str:
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def _problem_key(problem: Any) -> tuple:
    """The same problem in two layers: the same field, error and value (a mapping's value is its
    whole section, changed by any field another layer sets: its message says enough)."""
    given = problem.get("input")
    return tuple(problem["loc"]), problem["type"], problem["msg"], None if isinstance(given, dict) else repr(given)


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
