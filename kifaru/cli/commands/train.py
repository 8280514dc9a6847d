"""``kifaru train``: train or fine-tune a video model on a labels CSV, as ``zamba train``."""

from __future__ import annotations

import argparse
import copy
import sys
import warnings
from pathlib import Path
from typing import Any

from kifaru.cli.display import show_warnings
from kifaru.cli.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, exit_code_for
from kifaru.cli.options import add_config_options, add_model_options, add_processing_options, parse_overrides, run_configs
from kifaru.exceptions import ConfigError
from kifaru.progress import plural

# train_config fields settable on the command line (zamba train's options, and a few of kifaru's)
TRAIN_OPTIONS = {
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


def register(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
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
    add_model_options(train, "fine-tune")
    add_config_options(train, help="YAML file with train_config and/or video_loader_config")
    train.add_argument("--save-dir", type=Path, help="where version_N/ folders go (default: here)")
    train.add_argument("-o", "--overwrite", action="store_true", default=None, help="write into --save-dir itself")
    add_processing_options(train, "step")
    train.add_argument("--gpus", type=int, help="GPUs to use (DDP when more than one); 0 for the CPU")
    train.add_argument("--cpu-processes", type=int, help="without a GPU: DDP over this many CPU processes")
    train.add_argument("--max-epochs", type=int, help="stop after this many epochs (default: early stopping decides)")
    train.add_argument("--resume-from", type=Path, help="continue an interrupted run from its checkpoints/last.ckpt")
    train.add_argument("--predict-dir", type=Path, help="when training ends, predict the clips in this folder (version_N/predictions/)")
    train.add_argument("--skip-load-validation", action="store_true", default=None, help="accepted for zamba compatibility (every clip is read up front)")
    train.add_argument("--dry-run", action="store_true", default=None, help="one batch of each split, nothing saved")
    train.set_defaults(handler=handle)
    return train


def handle(args: argparse.Namespace) -> int:
    from kifaru.exceptions import TrainingInterrupted
    from kifaru.models.registry import DEFAULT_VIDEO_MODEL, video_model_entry
    from kifaru.train.runner import train_model

    if args.labels is None and args.config is None:
        raise ConfigError("give --labels (a CSV with filepath and label columns) or --config (a YAML file with a train_config)")
    # As `zamba train`: without --config, the model's official train_config (its fine-tuning
    # schedule, early stopping and scheduler) rather than TrainConfig's defaults.
    official = {"train_config": copy.deepcopy(dict(video_model_entry(args.model or DEFAULT_VIDEO_MODEL).train_config))}
    config = run_configs(args, "train_config", TRAIN_OPTIONS, without_file=official)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = train_model(
                config.train_config, config.video_loader_config, video_loader_overrides=parse_overrides(args.set), overrides_name="--set"
            )
    except TrainingInterrupted as interrupt:
        print(_training_interrupted_message(interrupt, args), file=sys.stderr)
        return EXIT_INTERRUPTED
    if not report.main_process:
        return EXIT_OK  # one of DDP's other processes: rank 0 reports, once
    show_warnings(caught, skip=(DeprecationWarning,))
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

    train = register(argparse.ArgumentParser().add_subparsers())
    words = ["kifaru", "train"]
    for action in train._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings or action.dest in ("help", "resume_from") or value is None or value is False or value == []:
            continue
        option = max(action.option_strings, key=len)  # the long name
        for item in value if isinstance(value, list) else [value]:
            words += [option] if item is True else [option, str(item)]
    return shlex.join([*words, "--resume-from", str(resume_from)])
