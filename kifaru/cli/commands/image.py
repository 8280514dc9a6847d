"""``kifaru image predict``: the species in camera-trap photos, one row per animal the detector
finds (or per photo), as ``zamba image predict`` writes them; zamba's options and YAML
(``predict_config``), plus kifaru's (the detector, boxes from a MegaDetector file, workers,
bursts). ``kifaru image train``: an image classifier trained on labelled photos or sequences, as
``zamba image train`` (``train_config``)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from kifaru.cli.display import ProgressBar, device_description, show_warnings, warn
from kifaru.cli.commands.merge import add_shard_option
from kifaru.cli.commands.report import add_report_options, report_if_asked
from kifaru.cli.exit_codes import exit_code_for
from kifaru.cli.options import (
    REGIONS,
    add_backend_options,
    add_quiet_option,
    announce_backend,
    loading_description,
    relative_to_option,
    run_configs,
)
from kifaru.progress import plural

# predict_config fields settable on the command line: option dest -> field
IMAGE_PREDICT_OPTIONS = {
    "data_dir": "data_dir",
    "filepaths": "filepaths",
    "checkpoint": "checkpoint",
    "model": "model_name",
    "save": "save",
    "save_dir": "save_dir",
    "results_file_name": "results_file_name",
    "results_file_format": "results_file_format",
    "detections_threshold": "detections_threshold",
    "weight_download_region": "weight_download_region",
    "overwrite": "overwrite",
    "crop_images": "crop_images",
    "detector": "detector",
    "image_size": "image_size",
    "batch_size": "batch_size",
    "num_workers": "num_workers",
    "gpus": "gpus",
    "model_cache_dir": "model_cache_dir",
    "sequences": "sequences",
    "sequence_gap_seconds": "sequence_gap_seconds",
    "aggregation": "aggregation",
}


def register(commands: argparse._SubParsersAction) -> None:
    image = commands.add_parser("image", help="camera-trap photos: species per animal found (zamba image)")
    image_commands = image.add_subparsers(dest="image_command", required=True, metavar="COMMAND")
    _register_predict(image_commands)
    _register_train(image_commands)


def _register_predict(commands: argparse._SubParsersAction) -> None:
    from kifaru.config.image import Aggregation, ResultsFormat
    from kifaru.detection.registry import DETECTORS
    from kifaru.models.registry import DEFAULT_IMAGE_MODEL, official_image_model_names

    predict = commands.add_parser("predict", help="species for every photo (zamba_predictions.csv, as zamba image predict writes it)")
    predict.add_argument("--data-dir", type=Path, help="folder of photos (searched recursively)")
    predict.add_argument("--filepaths", type=Path, help="CSV with a 'filepath' column (relative to --data-dir if given)")
    predict.add_argument("--checkpoint", type=Path, help="predict with this checkpoint (zamba's or kifaru's image .ckpt)")
    predict.add_argument(
        "--model", choices=official_image_model_names(), help=f"predict with an official image model (default {DEFAULT_IMAGE_MODEL})"
    )
    predict.add_argument("--config", type=Path, help="YAML file with a predict_config section (zamba's image layout)")
    predict.add_argument("--save", action=argparse.BooleanOptionalAction, default=None, help="write the outputs (default) or only print the predictions")
    predict.add_argument("--save-dir", type=Path, help="where outputs go (default: here)")
    predict.add_argument("--results-file-name", type=Path, help="the predictions file's name (default zamba_predictions.csv)")
    predict.add_argument(
        "--results-file-format", choices=[f.value for f in ResultsFormat],
        help="csv (default), or megadetector: MegaDetector batch JSON with each crop's species, for Timelapse",
    )  # fmt: skip
    predict.add_argument("--detections-threshold", type=float, help="crop the detections at least this confident (default 0.2)")
    predict.add_argument(
        "--no-crop-images", dest="crop_images", action="store_false", default=None,
        help="classify each photo whole, one row per photo (zamba 2.7.2 crops anyway)",
    )  # fmt: skip
    predict.add_argument("--detector", choices=list(DETECTORS.names()), help="the detector whose boxes are cropped (default megadetector_lite)")
    predict.add_argument(
        "--detections-file", type=Path, metavar="JSON",
        help="crop the boxes of this MegaDetector batch output instead of running a detector",
    )  # fmt: skip
    relative_to_option(predict)
    predict.add_argument(
        "--sequences", action=argparse.BooleanOptionalAction, default=None,
        help="bursts: group photos into sequences (by camera folder and EXIF time; a seq_id column of --filepaths "
        "turns this on) and write one row per sequence too",
    )  # fmt: skip
    predict.add_argument("--sequence-gap-seconds", type=float, help="a longer gap between a camera's photos starts a new sequence (default 60)")
    predict.add_argument(
        "--aggregation", choices=[a.value for a in Aggregation],
        help="how a sequence's photos make one event (default mean; blank/empty always by the geometric mean)",
    )  # fmt: skip
    predict.add_argument("--image-size", type=int, help="the classifier's input size in pixels (default: the checkpoint's)")
    predict.add_argument("--batch-size", type=int, help="crops sent to the classifier together (default 8; each photo's crops are one model call)")
    predict.add_argument("--num-workers", type=int, help="processes that read photos and run the detector (default 3)")
    predict.add_argument("--gpus", type=int, help="GPUs to use; 0 for the CPU (default: a GPU if there is one)")
    predict.add_argument("--weight-download-region", choices=REGIONS, help="where official weights come from (default us)")
    predict.add_argument("--model-cache-dir", type=Path, help="where official weights are kept (default: env MODEL_CACHE_DIR, else the user cache)")
    predict.add_argument("-o", "--overwrite", action="store_true", default=None, help="replace outputs of an earlier run")
    predict.add_argument("-y", "--yes", action="store_true", help="accepted for zamba compatibility: kifaru never asks")
    add_report_options(predict)
    add_shard_option(predict)
    add_backend_options(predict)
    add_quiet_option(predict)
    predict.set_defaults(handler=handle_predict)


# train_config fields settable on the command line: option dest -> field
IMAGE_TRAIN_OPTIONS = {
    "data_dir": "data_dir",
    "labels": "labels",
    "labels_format": "labels_format",
    "checkpoint": "checkpoint",
    "model": "model_name",
    "save_dir": "save_dir",
    "max_epochs": "max_epochs",
    "lr": "lr",
    "batch_size": "batch_size",
    "image_size": "image_size",
    "num_workers": "num_workers",
    "crop_images": "crop_images",
    "detections_threshold": "detections_threshold",
    "detector": "detector",
    "sequence_files": "sequence_files",
    "split_by": "split_by",
    "from_scratch": "from_scratch",
    "architecture": "architecture",
    "weighted_loss": "weighted_loss",
    "extra_train_augmentations": "extra_train_augmentations",
    "accelerator": "accelerator",
    "resume_from": "resume_from",
    "overwrite": "overwrite",
    "weight_download_region": "weight_download_region",
    "model_cache_dir": "model_cache_dir",
    "seed": "seed",
}


def _register_train(commands: argparse._SubParsersAction) -> None:
    from kifaru.detection.registry import DETECTORS
    from kifaru.models.registry import DEFAULT_IMAGE_MODEL, official_image_model_names

    train = commands.add_parser(
        "train", help="train or fine-tune an image classifier on labelled photos (as zamba image train)",
        usage="%(prog)s --data-dir DIR (--labels LABELS.csv | --config FILE.yaml) [options]",
    )  # fmt: skip
    train.add_argument("--data-dir", type=Path, help="folder the labels' filepaths are relative to")
    train.add_argument(
        "--labels", type=Path, metavar="LABELS.csv",
        help="CSV: filepath and label rows, or one 0/1 column per class; by seq_id with --sequence-files (optional: split, seq_id, a --split-by column); "
        "or a JSON file (--labels-format)",
    )  # fmt: skip
    train.add_argument("--labels-format", choices=["coco", "megadetector"], help="for JSON labels: COCO (default) or MegaDetector results with classifications")
    train.add_argument("--sequence-files", type=Path, metavar="CSV", help="filepath and seq_id of each photo, for labels given per seq_id")
    train.add_argument("--split-by", metavar="COLUMN", help="make splits that keep this column's groups apart (season, site)")
    train.add_argument("--checkpoint", type=Path, help="fine-tune this image checkpoint (zamba's or kifaru's)")
    train.add_argument("--model", choices=official_image_model_names(), help=f"fine-tune an official image model (default {DEFAULT_IMAGE_MODEL})")
    train.add_argument("--from-scratch", action="store_true", default=None, help="train a new network (the model's kind, or --architecture)")
    train.add_argument("--architecture", metavar="TIMM_NAME", help="with --from-scratch: any timm network, e.g. convnextv2_nano")
    train.add_argument("--config", type=Path, help="YAML file with a train_config section (zamba's image layout)")
    train.add_argument("--save-dir", type=Path, help="where the checkpoint and the run's outputs go (default: here)")
    train.add_argument("--max-epochs", type=int, help="at most this many epochs (default 100; early stopping decides)")
    train.add_argument("--lr", type=float, help="learning rate (default: Lightning's finder picks one)")
    train.add_argument("--batch-size", type=int, help="crops per step (default 16)")
    train.add_argument("--image-size", type=int, help="the network's input size in pixels (default: the checkpoint's)")
    train.add_argument("--num-workers", type=int, help="processes that read photos and feed batches (default 2)")
    train.add_argument("--no-crop-images", dest="crop_images", action="store_false", default=None, help="train on whole photos, not the detector's crops")
    train.add_argument("--detections-threshold", type=float, help="train on the detections at least this confident (default 0.2)")
    train.add_argument("--detector", choices=list(DETECTORS.names()), help="the detector whose boxes are cropped (default megadetector_lite)")
    train.add_argument("--weighted-loss", action="store_true", default=None, help="weigh the loss by class (for imbalanced labels)")
    train.add_argument("--extra-train-augmentations", action="store_true", default=None, help="zamba's extra augmentations")
    train.add_argument("--accelerator", choices=["cpu", "gpu"], help="where to train (default: a GPU if there is one)")
    train.add_argument("--resume-from", type=Path, help="continue a stopped run from its checkpoints/last.ckpt")
    train.add_argument("-o", "--overwrite", action="store_true", default=None, help="replace the checkpoint of an earlier run in --save-dir")
    train.add_argument("--seed", type=int, help="seed every random draw (splits aside: SPLIT_SEED)")
    train.add_argument("--weight-download-region", choices=REGIONS, help="where official weights come from (default us)")
    train.add_argument("--model-cache-dir", type=Path, help="where official weights are kept (default: env MODEL_CACHE_DIR, else the user cache)")
    train.add_argument("-y", "--yes", action="store_true", help="accepted for zamba compatibility: kifaru never asks")
    train.set_defaults(handler=handle_train)


def handle_train(args: argparse.Namespace) -> int:
    from kifaru.cli.exit_codes import EXIT_INTERRUPTED
    from kifaru.config.image import ImageConfigFile
    from kifaru.exceptions import ConfigError, TrainingInterrupted
    from kifaru.train.image_runner import FAILURES_CSV, train_images

    if args.config is None and (args.labels is None or args.data_dir is None):
        raise ConfigError("give --data-dir (the photos' folder) and --labels (a CSV of filepath and label), or --config (a YAML file with a train_config)")
    configs = run_configs(args, "train_config", IMAGE_TRAIN_OPTIONS, schema=ImageConfigFile)
    if configs.train_config is None:
        raise ConfigError(f"{args.config}: no train_config section")
    config = configs.train_config
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = train_images(config)
    except TrainingInterrupted as interrupt:
        show_warnings(caught)
        where = f"; its checkpoints/last.ckpt continues it: add --resume-from {interrupt.last_checkpoint}" if interrupt.last_checkpoint else ", before its first checkpoint"
        print(f"training interrupted ({interrupt.signal_name}) after {plural(interrupt.epochs, 'finished epoch')}{where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    show_warnings(caught, skip=(DeprecationWarning,))
    val = report.val_metrics
    figures = ", ".join(f"{name} {val[name]:.3f}" for name in ("val_loss", "val_macro_f1", "val_image_macro_f1", "val_sequence_macro_f1") if name in val)
    print(
        f"trained {plural(report.epochs, 'epoch')} on {plural(len(report.photos.filepaths), 'photo')} ({plural(report.crops, 'crop')}; "
        f"{len(report.failures)} not trained on) at lr {report.lr:.3g}" + (f"; best: {figures}" if figures else "")
    )
    print(f"wrote {report.checkpoint} and the run's outputs in {report.save_dir}")
    if report.failures:
        print(f"exit code 1: {plural(len(report.failures), 'photo')} not trained on, with the reasons in {report.save_dir / FAILURES_CSV}", file=sys.stderr)
    return exit_code_for(len(report.failures))


def _crops_outcome(record) -> str:  # type: ignore[no-untyped-def]
    crops = record.outputs.get("crops") or []
    boxed = [c for c in crops if c.get("box") is not None]
    if crops and not boxed:
        return "classified whole"
    return f"{plural(len(boxed), 'animal')} found" if boxed else "no animal found"


def handle_predict(args: argparse.Namespace) -> int:
    from kifaru.config.image import ImageConfigFile, ImagePredictConfig
    from kifaru.runs.image_predict import predict_images, resolve_image_run
    from kifaru.runs.shards import Shard

    configs = run_configs(args, "predict_config", IMAGE_PREDICT_OPTIONS, schema=ImageConfigFile)
    config = configs.predict_config or ImagePredictConfig()
    announce_backend(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = resolve_image_run(
            config, relative_to=args.relative_to, detections_file=args.detections_file, shard=Shard.parse(args.shard) if args.shard else None
        )
    show_warnings(caught)
    run.backend, run.ray_address = args.backend, args.ray_address
    if run.shard is not None:
        kept = "whole bursts" if run.sequences_on else "by path"
        print(f"shard {run.shard.shard}: {plural(len(run.files), 'photo')} of {run.shard.total} ({kept})", file=sys.stderr)
    config = run.config
    if run.duplicates:
        warn(f"{config.filepaths}: {run.duplicates} duplicate rows dropped")
    if run.ignored:
        print(f"note: not photos, ignored in {config.data_dir}: {run.ignored}", file=sys.stderr)
    if not config.crop_images:
        crops = "each photo classified whole"
    elif args.detections_file is not None:
        crops = f"crops of the boxes in {args.detections_file} (confidence >= {config.detections_threshold:g})"
    else:
        crops = f"crops of {config.detector}'s detections (confidence >= {config.detections_threshold:g})"
    print(
        f"kifaru image predict: {run.checkpoint.hyper_parameters.get('model_name')} ({run.family}, {run.image_size} px) "
        f"with {len(run.species)} species ({config.checkpoint}); device {device_description(run.device)}; {crops}; "
        f"{plural(len(run.files), 'photo')}, {loading_description(args, run.loading_processes)}"
        + (f"; outputs in {config.save_dir}" if config.save else ""),
        file=sys.stderr,
    )
    bar = ProgressBar(quiet=args.quiet, outcome=_crops_outcome)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-file notes are in the records, shown by the bar
        report = predict_images(config, run=run, progress=bar.update)
    bar.close()
    print(
        f"{plural(len(report.records), 'photo')}: {len(report.predicted)} predicted, {len(report.failed)} failed"
        + (f" ({report.resumed} done by an earlier run)" if report.resumed else "")
    )
    grouping = report.grouping
    if grouping is not None:
        print(f"{plural(len(grouping.sequences()), 'sequence')} ({grouping.rule}; aggregation {config.aggregation})")
        if grouping.untimed:
            warn(
                f"{plural(len(grouping.untimed), 'photo')} without an EXIF time (DateTimeOriginal), e.g. {grouping.untimed[0]}: "
                "each is a sequence of its own, after its camera's timed photos. To group them, give --filepaths "
                "a CSV with a seq_id column"
            )
    for path in report.outputs.values():
        print(f"wrote {path}")
    if report.failed and report.outputs:
        print(f"the photos without a prediction and why are in {', '.join(p.name for p in report.outputs.values() if p.suffix != '.yaml')}", file=sys.stderr)
    if not report.outputs:
        print(report.predictions_csv(), end="")
    report_if_asked(args, Path(config.save_dir), bool(report.outputs))
    return exit_code_for(len(report.failed))
