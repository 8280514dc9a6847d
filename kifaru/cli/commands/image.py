"""``kifaru image predict``: the species in camera-trap photos, one row per animal the detector
finds (or per photo), as ``zamba image predict`` writes them; zamba's options and YAML
(``predict_config``), plus kifaru's (the detector, boxes from a MegaDetector file, workers)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from kifaru.cli.display import ProgressBar, device_description, show_warnings, warn
from kifaru.cli.exit_codes import exit_code_for
from kifaru.cli.options import REGIONS, add_quiet_option, relative_to_option, run_configs
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
    predict.add_argument("--batch-size", type=int, help="crops per model call (default 8)")
    predict.add_argument("--num-workers", type=int, help="processes that read photos and run the detector (default 3)")
    predict.add_argument("--gpus", type=int, help="GPUs to use; 0 for the CPU (default: a GPU if there is one)")
    predict.add_argument("--weight-download-region", choices=REGIONS, help="where official weights come from (default us)")
    predict.add_argument("--model-cache-dir", type=Path, help="where official weights are kept (default: env MODEL_CACHE_DIR, else the user cache)")
    predict.add_argument("-o", "--overwrite", action="store_true", default=None, help="replace outputs of an earlier run")
    predict.add_argument("-y", "--yes", action="store_true", help="accepted for zamba compatibility: kifaru never asks")
    add_quiet_option(predict)
    predict.set_defaults(handler=handle_predict)


def _crops_outcome(record) -> str:  # type: ignore[no-untyped-def]
    crops = record.outputs.get("crops") or []
    boxed = [c for c in crops if c.get("box") is not None]
    if crops and not boxed:
        return "classified whole"
    return f"{plural(len(boxed), 'animal')} found" if boxed else "no animal found"


def handle_predict(args: argparse.Namespace) -> int:
    from kifaru.config.image import ImageConfigFile, ImagePredictConfig
    from kifaru.runs.image_predict import predict_images, resolve_image_run

    configs = run_configs(args, "predict_config", IMAGE_PREDICT_OPTIONS, schema=ImageConfigFile)
    config = configs.predict_config or ImagePredictConfig()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = resolve_image_run(config, relative_to=args.relative_to, detections_file=args.detections_file)
    show_warnings(caught)
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
        f"{plural(len(run.files), 'photo')}, {plural(run.loading_processes, 'loading process', 'loading processes')}"
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
    return exit_code_for(len(report.failed))
