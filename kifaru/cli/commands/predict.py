"""``kifaru predict``: species probabilities for every clip, as zamba writes them, and optionally
MegaDetector JSON with the species as classifications (Timelapse)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from kifaru.cli.display import ProgressBar, device_description, show_warnings, warn
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
from kifaru.cli.options import (
    add_config_options,
    add_model_options,
    add_processing_options,
    add_quiet_option,
    parse_overrides,
    relative_to_option,
    run_configs,
)
from kifaru.progress import plural

# predict_config fields settable on the command line: option dest -> field
PREDICT_OPTIONS = {
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
    "photos": "photos",
    "preset": "preset",
}


def register(commands: argparse._SubParsersAction) -> None:
    from kifaru.runs.predict import DEFAULT_OUTPUT_FORMATS, OUTPUT_FORMATS

    predict = commands.add_parser("predict", help="species probabilities for every video (zamba_predictions.csv, as zamba writes it)")
    predict.add_argument("--data-dir", type=Path, help="folder of videos (searched recursively)")
    predict.add_argument("--filepaths", type=Path, help="CSV with a 'filepath' column (relative to --data-dir if given)")
    add_model_options(predict, "predict with")
    add_config_options(predict, help="YAML file with predict_config and/or video_loader_config")
    predict.add_argument("--save-dir", type=Path, help="where outputs go (default: here)")
    predict.add_argument("--save", action=argparse.BooleanOptionalAction, default=None, help="write the outputs (default) or only print the predictions")
    predict.add_argument(
        "--output-format", default=",".join(DEFAULT_OUTPUT_FORMATS), metavar="FORMAT[,FORMAT]",
        help=f"outputs to write, among {', '.join(OUTPUT_FORMATS)} (default %(default)s); megadetector: "
        "megadetector_predictions.json for Timelapse, the species as classifications; segments: segments.csv, the intervals in "
        "which an animal is seen in each clip, with the clip's species",
    )  # fmt: skip
    relative_to_option(predict)
    predict.add_argument(
        "--photos", choices=["image", "skip"],
        help="photos in --data-dir beside the videos: image classifies them too (kifaru image predict's model and "
        "outputs, zamba_image_predictions.csv), skip leaves them out as zamba does (default: refused, saying so)",
    )  # fmt: skip
    predict.add_argument(
        "--preset", choices=["exact", "fast"],
        help="exact (the default) computes what zamba computes; fast screens each clip cheaply first and leaves the "
        "classifier out where the detector finds no animal, saying so in a decided_by column (docs/fast-mode.md)",
    )  # fmt: skip
    predict.add_argument("-o", "--overwrite", action="store_true", default=None, help="replace outputs of an earlier run")
    add_processing_options(predict, "batch sent to the classifier (each clip is its own model call)")
    predict.add_argument("--gpus", type=int, help="GPUs to use; 0 for the CPU (default: a GPU if there is one)")
    predict.add_argument("--proba-threshold", type=float, help="write 0/1 per species: probability above this")
    predict.add_argument("--output-class-names", action="store_true", default=None, help="write only the most likely species")
    predict.add_argument("--skip-load-validation", action="store_true", default=None, help="accepted for zamba compatibility (every file is checked as it is read)")
    predict.add_argument("--dry-run", action="store_true", default=None, help="one batch, nothing saved")
    add_report_options(predict)
    add_annotated_videos_option(predict)
    add_segment_classifier_option(predict)
    add_shard_option(predict)
    add_backend_options(predict)
    add_quiet_option(predict)
    predict.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from kifaru.runs.predict import FAILURES_CSV, choose_classifier_runtime, predict_model, resolve_predict_run
    from kifaru.runs.shards import Shard
    from kifaru.video.loaded import DECIDED_BY_DETECTOR

    configs = run_configs(args, "predict_config", PREDICT_OPTIONS)
    announce_backend(args)
    formats = [name.strip() for name in args.output_format.split(",") if name.strip()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = resolve_predict_run(
            configs.predict_config, configs.video_loader_config, video_loader_overrides=parse_overrides(args.set),
            overrides_name="--set", output_formats=formats, relative_to=args.relative_to,
            shard=Shard.parse(args.shard) if args.shard else None,
        )  # fmt: skip
        run.backend, run.ray_address = args.backend, args.ray_address
    show_warnings(caught)
    if run.shard is not None:
        print(f"shard {run.shard.shard}: {plural(len(run.files), 'file')} of {run.shard.total}", file=sys.stderr)
    config = run.predict_config
    run.segment_classifier = resolve_segment_classifier(args, run.device, Path(config.model_cache_dir) if config.model_cache_dir else None)
    if run.duplicates:
        warn(f"{config.filepaths}: {run.duplicates} duplicate rows dropped")
    if run.ignored:
        also = "; the photos are classified after the videos, with the image model" if run.photos_run is not None else ""
        print(f"note: not videos, ignored in {config.data_dir}: {run.ignored}{also}", file=sys.stderr)
    # Chosen before the banner (exporting to ONNX first, if needed), so that it can say which
    # runtime runs the classifier: a fallback to PyTorch halves the speed and must not go unseen.
    runtime = choose_classifier_runtime(run) if run.files else None
    if runtime is not None and runtime.fallback_reason:
        warn(f"ONNX Runtime cannot run the classifier, so it runs in PyTorch (slower): {runtime.fallback_reason}")
    if config.preset == "fast" and run.screen is None:
        warn("--preset fast screens clips with MegadetectorLite, which this video_loader_config leaves out "
             "(megadetector_lite_config): every clip is read and classified as in exact mode")  # fmt: skip
    screen = run.screen
    print(
        f"kifaru predict: {run.checkpoint.model_class} with {len(run.species)} species ({config.checkpoint}); "
        f"device {device_description(run.device)}"
        + (f", classifier in {runtime.describe()}" if runtime is not None else "")
        + (f"; fast mode: a screen at {screen.image_size}x{screen.image_size} first, the clips in which it finds no animal decided by the detector" if screen else "")
        + f"; {plural(len(run.files), 'file')}, {loading_description(args, run.loading_processes)}"
        + (" (dry run: one batch, nothing saved)" if config.dry_run else f"; outputs in {config.save_dir}"),
        file=sys.stderr,
    )
    bar = ProgressBar(quiet=args.quiet)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-file notes are in the records, shown by the bar
        report = predict_model(config, run.video_loader_config, run=run, progress=bar.update)
    bar.close()
    by_detector = sum(r.outputs.get("decided_by") == DECIDED_BY_DETECTOR for r in report.predicted)
    print(
        f"{plural(len(report.records), 'file')}: {len(report.predicted)} predicted"
        + (f" ({by_detector} decided by the detector: no animal on the screen)" if screen else "")
        + f", {len(report.failed)} failed"
        + (f" ({report.resumed} done by an earlier run)" if report.resumed else "")
    )
    for path in report.outputs.values():
        print(f"wrote {path}")
    if report.failed and report.outputs:
        where = FAILURES_CSV if "failures" in report.outputs else report.outputs.get("megadetector", Path()).name
        print(f"the files without a prediction and why are in {where}", file=sys.stderr)
    if not report.outputs:
        print(report.predictions_csv(), end="")
    photos_failed = 0
    if report.photos is not None:
        photos = report.photos
        photos_failed = len(photos.failed)
        print(f"{plural(len(photos.records), 'photo')} ({photos.run.checkpoint.hyper_parameters.get('model_name')}): {len(photos.predicted)} predicted, {photos_failed} failed")
        for path in photos.outputs.values():
            print(f"wrote {path}")
    report_if_asked(args, Path(config.save_dir), bool(report.outputs))
    return exit_code_for(len(report.failed) + photos_failed)
