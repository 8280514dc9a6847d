"""The ``kifaru`` command. Thin: parses arguments, calls the library, and turns its typed
exceptions into messages and exit codes here, in one place."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import yaml

from kifaru import __version__
from kifaru.config import VideoLoaderConfig, dump_config, load_config_file
from kifaru.config.files import read_config_mapping, validate_config
from kifaru.exceptions import ConfigError, KifaruError

EXIT_OK = 0
EXIT_FAILED = 1  # the input could not be processed
EXIT_USAGE = 2  # bad command line or configuration


def _parse_overrides(pairs: Sequence[str]) -> dict:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected FIELD=VALUE, e.g. --set fps=4")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def _video_loader_config(config_file: Optional[Path], overrides: dict) -> VideoLoaderConfig:
    """Precedence: defaults < the YAML file < explicit command-line values."""
    raw = read_config_mapping(config_file) if config_file is not None else {}
    section = raw.get("video_loader_config") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{config_file}: video_loader_config must be a mapping of fields")
    merged = {**raw, "video_loader_config": {**section, **overrides}}
    source = f"{config_file} with --set" if config_file else "--set"
    return validate_config(merged, source=source).video_loader_config


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_config_file(args.file)
    print(f"# {args.file}: valid. Resolved configuration:")
    print(dump_config(config), end="")
    return EXIT_OK


def cmd_frames(args: argparse.Namespace) -> int:
    from kifaru.video import FrameLoader
    from kifaru.video.sheet import save_contact_sheet

    config = _video_loader_config(args.config, _parse_overrides(args.set))
    with warnings.catch_warnings(record=True) as caught, FrameLoader(config) as loader:
        warnings.simplefilter("always")
        loaded = loader.load(args.video)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    frames = loaded.frames
    info = loaded.info
    if info is not None:
        print(
            f"{args.video}: {info.codec} {info.width}x{info.height}, {info.frame_count} frames, "
            f"{float(info.end_time):.2f} s"
        )
    else:
        print(f"{args.video}: from the frame cache")
    print(f"selected {len(frames)} frames, array {tuple(frames.shape)} {frames.dtype} ({config.pix_fmt})")
    labels = [
        f"#{i} src {source} t={time:.2f}s" if source >= 0 else f"#{i} (zeros)"
        for i, (source, time) in enumerate(zip(loaded.source_indices, loaded.times))
    ]
    if args.verbose:
        for label in labels:
            print(f"  {label}")
    if args.out:
        np.save(args.out, frames)
        print(f"wrote {args.out}")
    if args.sheet:
        rgb = frames[..., ::-1] if config.pix_fmt == "bgr24" else frames
        if len(rgb):
            save_contact_sheet(args.sheet, rgb, labels)
            print(f"wrote {args.sheet}")
        else:
            print("no frames: contact sheet not written", file=sys.stderr)
    return EXIT_OK


def cmd_samples(args: argparse.Namespace) -> int:
    from kifaru.samples import make_samples

    for path in make_samples(args.folder):
        print(path)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kifaru", description="Find the animals in camera-trap videos (zamba-compatible)."
    )
    parser.add_argument("--version", action="version", version=f"kifaru {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = commands.add_parser("config", help="work with configuration files")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_commands.add_parser("check", help="validate a YAML config and print it resolved")
    check.add_argument("file", type=Path, metavar="FILE.yaml")
    check.set_defaults(handler=cmd_config_check)

    frames = commands.add_parser(
        "frames", help="show the frames a model would see for a video (array and/or contact sheet)"
    )
    frames.add_argument("video", type=Path, metavar="VIDEO")
    frames.add_argument("--config", type=Path, help="YAML file; its video_loader_config is used")
    frames.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE",
        help="a video_loader_config field, overriding the file (repeatable), e.g. --set fps=4",
    )
    frames.add_argument("--out", type=Path, help="write the frames as a .npy array")
    frames.add_argument("--sheet", type=Path, help="write a contact sheet image (.png/.jpg)")
    frames.add_argument("-v", "--verbose", action="store_true", help="list every selected frame")
    frames.set_defaults(handler=cmd_frames)

    samples = commands.add_parser(
        "samples", help="write a few sample clips made from real photographs (needs kifaru[samples])"
    )
    samples.add_argument("folder", type=Path, metavar="FOLDER")
    samples.set_defaults(handler=cmd_samples)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, --version, or a usage error argparse already printed
        return exit.code if isinstance(exit.code, int) else EXIT_USAGE
    try:
        return args.handler(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KifaruError as error:  # a file that cannot be used, among others
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
