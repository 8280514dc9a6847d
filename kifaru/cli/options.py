"""Options shared by commands, and how they become config layers: precedence defaults < the YAML
file < ``--set`` < the command's own options, a bad value reported as coming from where it was
given (``--fps``, ``--set FIELD``, the file and the field's path)."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import yaml

from kifaru.config import VideoLoaderConfig
from kifaru.config.files import override_layers, read_config_mapping, validate_layered_config
from kifaru.exceptions import ConfigError

if TYPE_CHECKING:
    from kifaru.config import KifaruConfig

REGIONS = ["us", "eu", "asia"]


def parse_overrides(pairs: Sequence[str]) -> dict:
    """``--set FIELD=VALUE`` pairs as a mapping, each value read as YAML (``fps=4`` is a number)."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected FIELD=VALUE, e.g. --set fps=4")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def option_layer(option: str, value: Any, section: str, *fields: str) -> tuple[str, dict]:
    """An option's value as a config layer (``fields``: its path in ``section``), named as the
    option: ``--fps 2``, ``--overwrite``, ``--no-save``."""
    if value is True or value is False:
        named = option if value else option.replace("--", "--no-", 1)
    else:
        named = f"{option} {value:g}" if isinstance(value, float) else f"{option} {value}"
    for field in reversed(fields):
        value = {field: value}
    return named, {section: value}


def file_layer(config_file: Path, section: str) -> tuple[str, dict]:
    raw = read_config_mapping(config_file)
    if raw.get(section) is not None and not isinstance(raw[section], dict):
        raise ConfigError(f"{config_file}: {section} must be a mapping of fields")
    return str(config_file), raw


def video_loader_config(
    config_file: Optional[Path], overrides: dict, defaults: Optional[dict] = None, options: Sequence[tuple[str, dict]] = ()
) -> VideoLoaderConfig:
    """Precedence: ``defaults`` < the YAML file < --set ``overrides`` < ``options`` (layers from
    option_layer). A bad value is reported as coming from the one that gave it; so is a detector
    device that is not here."""
    from kifaru.runtime.device import check_device

    layers = [("defaults", {"video_loader_config": defaults or {}})]
    if config_file is not None:
        layers.append(file_layer(config_file, "video_loader_config"))
    layers += [*override_layers(overrides, "--set"), *options]
    config = validate_layered_config(layers).video_loader_config or VideoLoaderConfig()  # None: the file's null
    if config.megadetector_lite_config is not None and config.megadetector_lite_config.device is not None:
        check_device(config.megadetector_lite_config.device, field_source(layers, "video_loader_config", "megadetector_lite_config", "device"))
    return config


_UNSET = object()


def field_source(layers: Sequence[tuple[str, dict]], *path: str) -> str:
    """Where a field's value comes from, for a message: the option (``--device``), ``--set
    FIELD`` or the file and the field's path, of the last layer that sets it."""
    for source, mapping in reversed(layers):
        value: Any = mapping
        for key in path:
            value = value.get(key, _UNSET) if isinstance(value, dict) else _UNSET
        if value is _UNSET:
            continue
        if source.startswith("--set "):
            return source.split("=")[0]  # --set FIELD
        if source.startswith("--"):
            return source.split(" ")[0]  # the option
        return f"{source}: {'.'.join(path)}"  # the file
    return ".".join(path)


def run_configs(
    args: argparse.Namespace,
    section_name: str,
    options: dict[str, str],
    without_file: Optional[dict[str, Any]] = None,
    schema: Optional[type] = None,
) -> "KifaruConfig":
    """The YAML file's configs (``without_file`` when no --config is given) with the options given
    on the command line put into its ``section_name`` (``options``: option dest -> field;
    precedence: defaults < the file < the command line; --set is applied by the library, on top
    of the model's default loader config when the file has none). ``schema``: the file's layout
    when it is not the video commands' (kifaru.config.image.ImageConfigFile)."""
    source, raw = file_layer(args.config, section_name) if args.config is not None else ("defaults", copy.deepcopy(without_file or {}))
    section = raw[section_name] = dict(raw.get(section_name) or {})
    given = {dest: field for dest, field in options.items() if getattr(args, dest, None) is not None}
    if "model_name" in given.values() and "checkpoint" not in given.values():
        section.pop("checkpoint", None)  # an explicit --model beats the file's checkpoint
    option_layers = [option_layer("--" + dest.replace("_", "-"), getattr(args, dest), section_name, field) for dest, field in given.items()]
    layers = [(source, raw), *option_layers]
    return validate_layered_config(layers, schema) if schema is not None else validate_layered_config(layers)


def add_config_options(command: argparse.ArgumentParser, help: str = "YAML file; its video_loader_config is used") -> None:
    """--config FILE and --set FIELD=VALUE: a video_loader_config, command-line values winning."""
    command.add_argument("--config", type=Path, help=help)
    command.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE",
        help="a video_loader_config field, overriding the file (repeatable), e.g. --set fps=4",
    )  # fmt: skip


def add_model_options(command: argparse.ArgumentParser, verb: str) -> None:
    """The options predict and train share: where the model comes from and zamba's accepted ones."""
    from kifaru.models.registry import DEFAULT_VIDEO_MODEL, official_video_model_names

    names = ", ".join(official_video_model_names())
    command.add_argument("--checkpoint", type=Path, help=f"{verb} this checkpoint (zamba's or kifaru's .ckpt)")
    command.add_argument("--model", help=f"{verb} an official model: {names} (default {DEFAULT_VIDEO_MODEL})")
    command.add_argument("--weight-download-region", choices=REGIONS, help="where official weights come from (default us)")
    command.add_argument("--model-cache-dir", type=Path, help="where official weights are kept (default: env MODEL_CACHE_DIR, else the user cache)")
    command.add_argument("-y", "--yes", action="store_true", help="accepted for zamba compatibility: kifaru never asks")


def add_processing_options(command: argparse.ArgumentParser, item: str) -> None:
    """--batch-size, --num-workers, --gpus: how predict and train run."""
    command.add_argument("--batch-size", type=int, help=f"clips per {item} (default 2)")
    command.add_argument("--num-workers", type=int, help="processes that read videos (default 3)")


def add_quiet_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("-q", "--quiet", action="store_true", help="no line per file in logs (failures and warnings are still shown)")


def relative_to_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--relative-to", type=Path, metavar="FOLDER",
        help="write MegaDetector JSON paths relative to this folder, Timelapse's root (default: --data-dir, else the folder holding every file)",
    )  # fmt: skip


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """--backend and --ray-address: where the files are read (this machine, or a Ray cluster)."""
    from kifaru.runs.ray_backend import BACKENDS

    parser.add_argument(
        "--backend", choices=BACKENDS, default="local",
        help="local: worker processes here (default); ray: actors on a Ray cluster, one per CPU (needs kifaru[ray])",
    )  # fmt: skip
    parser.add_argument("--ray-address", metavar="ADDR", help="the Ray cluster's address, e.g. 10.0.0.5:6379 (default: RAY_ADDRESS, else a Ray started for this run on 127.0.0.1)")


def loading_description(args: argparse.Namespace, processes: int, what: str = "loading") -> str:
    """Who reads the files, for a command's banner: its processes here, or the Ray cluster's actors."""
    from kifaru.progress import plural

    if getattr(args, "backend", "local") == "ray":
        return "one actor per CPU of the Ray cluster"
    return plural(processes, f"{what} process", f"{what} processes")


def announce_backend(args: argparse.Namespace) -> None:
    """Connects to the Ray cluster now (a bad address is said before any file is read) and names it."""
    if getattr(args, "backend", "local") != "ray":
        return
    import sys

    from kifaru.runs.ray_backend import cluster_description, connect

    print(f"backend: {cluster_description(connect(args.ray_address))}", file=sys.stderr)
