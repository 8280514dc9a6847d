"""``kifaru detect``: MegadetectorLite over a folder or a list of files; MegaDetector JSON for
Timelapse and a summary CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kifaru.cli.display import ProgressBar, note, warn
from kifaru.cli.commands.merge import add_shard_option
from kifaru.cli.options import add_backend_options, announce_backend, loading_description
from kifaru.cli.commands.report import (
    add_annotated_videos_option,
    add_report_options,
    add_segment_classifier_option,
    report_if_asked,
    resolve_segment_classifier,
)
from kifaru.cli.exit_codes import exit_code_for
from kifaru.cli.options import add_config_options, add_quiet_option, option_layer, parse_overrides, relative_to_option, video_loader_config
from kifaru.config import VideoLoaderConfig
from kifaru.progress import plural


def register(commands: argparse._SubParsersAction) -> None:
    from kifaru.runs.detect import DEFAULT_DETECT_THRESHOLD, DEFAULT_DETECT_WORKERS

    detect = commands.add_parser("detect", help="find animals with MegadetectorLite: MegaDetector JSON (Timelapse) and a summary CSV")
    inputs = detect.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--data-dir", type=Path, help="folder of videos and images (searched recursively)")
    inputs.add_argument("--filepaths", type=Path, help="CSV with a 'filepath' column")
    detect.add_argument(
        "--save-dir", "--output-dir", dest="output_dir", type=Path, default=Path("."), metavar="DIR",
        help="where outputs go (default: here)",
    )  # fmt: skip
    relative_to_option(detect)
    add_config_options(detect)
    detect.add_argument("--fps", type=float, help="frames per second to look at (default 1)")
    detect.add_argument("--confidence", type=float, help="detector confidence (default 0.25); boxes are kept in the JSON down to 0.05")
    detect.add_argument(
        "--threshold", type=float,
        help=f"a file has an animal when a box reaches this (default {DEFAULT_DETECT_THRESHOLD:g}, or the confidence when it is higher)",
    )  # fmt: skip
    detect.add_argument(
        "--num-workers", type=int, default=DEFAULT_DETECT_WORKERS,
        help=f"processes that read and detect, at most one per core; 0: this process (default {DEFAULT_DETECT_WORKERS})",
    )  # fmt: skip
    detect.add_argument("--weights", type=Path, help="local MegadetectorLite weights (offline machines)")
    detect.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    detect.add_argument("--overwrite", action="store_true", help="start over instead of resuming an earlier run")
    add_report_options(detect)
    add_annotated_videos_option(detect)
    add_segment_classifier_option(detect)
    add_shard_option(detect)
    add_backend_options(detect)
    add_quiet_option(detect)
    detect.set_defaults(handler=handle)


def detect_config(args: argparse.Namespace) -> VideoLoaderConfig:
    """The YAML's video_loader_config (or detect's defaults) with --set and the options on top."""
    from kifaru.config.video import MegadetectorLiteConfig, incompatible_fields
    from kifaru.runs.detect import DEFAULT_DETECT_FPS

    defaults: dict[str, Any] = {"megadetector_lite_config": {}}
    overrides = parse_overrides(args.set)
    if args.config is None:
        defaults["ensure_total_frames"] = False
        # detect's 1 fps, unless --set chooses the frames another way (fps excludes those).
        if not incompatible_fields("fps") & set(overrides):
            defaults["fps"] = DEFAULT_DETECT_FPS
    options = [
        option_layer(option, value, "video_loader_config", *path)
        for option, value, path in (
            ("--fps", args.fps, ("fps",)),
            ("--confidence", args.confidence, ("megadetector_lite_config", "confidence")),
            ("--device", args.device, ("megadetector_lite_config", "device")),
        )
        if value is not None
    ]
    config = video_loader_config(args.config, overrides, defaults, options)
    if config.megadetector_lite_config is None:  # the file's megadetector_lite_config: null
        config = config.model_copy(update={"megadetector_lite_config": MegadetectorLiteConfig()})
    return _detect_threshold(config, args)


def _detect_threshold(config: VideoLoaderConfig, args: argparse.Namespace) -> VideoLoaderConfig:
    """Sets ``args.threshold`` where it is not given (the default, or the confidence above it).
    Boxes are kept down to the lower of the confidence and KEPT_BOX_THRESHOLD, so a --threshold
    below both would count none of the weaker boxes a user lowering it wants counted: the
    confidence is lowered to it, and said."""
    from kifaru.runs.detect import DEFAULT_DETECT_THRESHOLD
    from kifaru.exceptions import ConfigError
    from kifaru.video.loader import KEPT_BOX_THRESHOLD

    detector = config.megadetector_lite_config
    if args.threshold is None:
        args.threshold = max(DEFAULT_DETECT_THRESHOLD, detector.confidence)
        return config
    if not 0 <= args.threshold <= 1:
        raise ConfigError(f"--threshold {args.threshold}: must be between 0 and 1")
    kept = min(detector.confidence, KEPT_BOX_THRESHOLD)
    if args.threshold >= kept:
        return config
    note(f"--threshold {args.threshold:g} is below {kept:g}, under which boxes are not kept: the detector's confidence is lowered to it")
    return config.model_copy(update={"megadetector_lite_config": detector.model_copy(update={"confidence": args.threshold})})


def handle(args: argparse.Namespace) -> int:
    from kifaru.runs.detect import DETECTIONS_JSON, detect_files, detect_inputs, resolve_detect_run
    from kifaru.runs.shards import Shard

    announce_backend(args)
    files, duplicates = detect_inputs(args.data_dir, args.filepaths)
    if duplicates:
        warn(f"--filepaths {args.filepaths}: {duplicates} duplicate rows ignored")
    config = detect_config(args)  # and args.threshold, checked
    run = resolve_detect_run(
        files, args.output_dir, video_loader_config=config, threshold=args.threshold, relative_to=args.relative_to,
        data_dir=args.data_dir, overwrite=args.overwrite, weights=args.weights, num_workers=args.num_workers,
        shard=Shard.parse(args.shard) if args.shard else None, backend=args.backend, ray_address=args.ray_address,
    )  # fmt: skip
    if run.shard is not None:
        print(f"shard {run.shard.shard}: {plural(len(run.items), 'file')} of {run.shard.total}", file=sys.stderr)
    run.segment_classifier = resolve_segment_classifier(args, args.device or "cpu")
    setup = run.detector
    where = f"{setup.device} ({setup.runtime})" if setup.runtime else f"{setup.device}"
    workers = f", {loading_description(args, run.num_workers, 'worker')}" if run.num_workers or run.backend == "ray" else ""
    frames = f"frames at {config.fps:g} fps" if config.fps else "every frame"
    print(f"MegadetectorLite on {where}{workers}; {plural(len(files), 'file')}; {frames}", file=sys.stderr)
    bar = ProgressBar(quiet=args.quiet, outcome=lambda record: _detect_outcome(record, args.threshold))
    report = detect_files(run=run, progress=bar.update)
    bar.close()
    records = report.records
    animals = sum(1 for r in records if not r.failed and r.animal_frames(args.threshold))
    noted = sum(1 for r in records if r.notes)
    print(
        f"{plural(len(records), 'file')}: {animals} with an animal, "
        f"{len(records) - animals - len(report.failed)} blank, {len(report.failed)} failed"
        + (f", {noted} with a warning (see the note column of {report.outputs['summary'].name})" if noted else "")
        + (f" ({report.skipped} done by an earlier run)" if report.skipped else "")
    )
    for path in report.outputs.values():
        print(f"wrote {path}")
    if report.failed:
        print(f"the failed files and why are in {report.outputs['summary'].name} and {DETECTIONS_JSON}", file=sys.stderr)
    report_if_asked(args, args.output_dir)
    return exit_code_for(len(report.failed))


def _detect_outcome(record: Any, threshold: float) -> str:
    """One file's result for its progress line: "animal in 4 of 6 frames (max 0.79)", "blank (6
    frames, max 0.12)"; a photo has no frame count."""
    animal = len(record.animal_frames(threshold))
    best = f"max {record.max_confidence():.2f}"
    if record.media == "image":
        return f"animal ({best})" if animal else f"blank ({best})"
    if animal:
        return f"animal in {animal} of {plural(len(record.frames), 'frame')} ({best})"
    return f"blank ({plural(len(record.frames), 'frame')}, {best})"
