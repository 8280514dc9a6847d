"""``predict_model``: the probability of each species in every clip, written as zamba writes it.

Outputs in ``save_dir`` (each replaced atomically, so a reader never sees half a file):

- ``zamba_predictions.csv``: ``filepath`` then one column per species (checkpoint order):
  probabilities to 5 decimals, or 0/1 with ``proba_threshold``, or the most likely class with
  ``output_class_names``. Exactly zamba's format, so downstream scripts keep working.
- ``zamba_predictions_failures.csv``: ``filepath, stage, reason`` for every input file that has no
  prediction, and why. zamba would predict on frames of zeros or only log it; kifaru never
  predicts from frames it did not read.
- ``predict_configuration.yaml``: the model, its species and both configs, as zamba writes it.

Each clip's result is appended to a progress file as it completes. An interrupted run (Ctrl-C,
kill -9, power loss) started again with the same settings skips the finished clips; the CSV it
writes at the end is the one an uninterrupted run writes. Ctrl-C or SIGTERM also writes the
outputs for the clips finished (the CSVs then hold only those) before
:class:`kifaru.exceptions.Interrupted` is raised.

A save_dir that holds an earlier run follows detect's rule (``kifaru.progress.records_to_resume``):
an interrupted run with the same checkpoint and loader config is continued, one with other
settings is refused naming what differs, and the outputs of a finished run (no progress file: it
is deleted when a run finishes) are refused as zamba refuses them; ``overwrite`` starts over.
"""

from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
import yaml

from kifaru.config.run import PredictConfig
from kifaru.config.video import VideoLoaderConfig
from kifaru.exceptions import ConfigError, Interrupted
from kifaru.files import write_text_atomically
from kifaru.notices import notify
from kifaru.progress import ProgressLog, check_finished_outputs, file_fingerprint, records_to_resume
from kifaru.failures import STAGE_FILE, STAGE_FRAMES, STAGE_MODEL
from kifaru.video.parallel import ClipResult

PREDICTIONS_CSV = "zamba_predictions.csv"
FAILURES_CSV = "zamba_predictions_failures.csv"
CONFIGURATION_YAML = "predict_configuration.yaml"
PROGRESS_FILE = ".kifaru-predict-progress.jsonl"



class PredictWarning(UserWarning):
    """Something about a prediction run the user should know (ignored options, dropped rows)."""


@dataclass
class InputFile:
    filepath: str  # as written in the outputs
    path: Path  # where it is read from
    failure: Optional[str] = None  # why it is not read at all (a folder, a macOS "._" file, ...)


@dataclass
class ClipRecord:
    """One input file's outcome: probabilities (species order), or a failure. Plain JSON types."""

    filepath: str
    probabilities: Optional[list[float]] = None
    stage: Optional[str] = None
    reason: Optional[str] = None
    fingerprint: Optional[list] = None  # [size, mtime_ns] when it was read
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.probabilities is None


@dataclass
class PredictRun:
    """Everything a prediction run needs, resolved: files, model, device, outputs."""

    predict_config: PredictConfig  # with checkpoint, model_name and save_dir filled in
    video_loader_config: VideoLoaderConfig
    checkpoint: Any  # kifaru.models.checkpoint_info.VideoModelCheckpoint, without its weights
    checkpoint_sha256: str
    device: str
    files: list[InputFile]
    duplicates: int = 0  # rows of the filepaths CSV dropped as repeats
    ignored: str = ""  # files in data_dir that are not videos, e.g. "3 .jpg"
    # Which runtime runs the classifier (kifaru.models.runner.RuntimeChoice): set by
    # choose_classifier_runtime, before the run starts or by it.
    classifier_runtime: Any = None

    @property
    def species(self) -> list[str]:
        return self.checkpoint.species

    @property
    def loading_processes(self) -> int:
        """num_workers, but at most one per CPU core: more only compete for the same cores (and
        each holds its own detector and frames)."""
        from kifaru.device import usable_cores

        return min(self.predict_config.num_workers, usable_cores())

    @property
    def save_dir(self) -> Path:
        return Path(self.predict_config.save_dir)


@dataclass
class PredictReport:
    run: PredictRun
    records: list[ClipRecord]  # input order
    resumed: int  # clips done by an earlier, interrupted run
    outputs: dict[str, Path]

    @property
    def failed(self) -> list[ClipRecord]:
        return [r for r in self.records if r.failed]

    @property
    def predicted(self) -> list[ClipRecord]:
        return [r for r in self.records if not r.failed]

    def predictions_csv(self) -> str:
        return predictions_csv(self.predicted, self.run.species, self.run.predict_config)


ProgressCallback = Callable[[ClipRecord, int, int], None]  # (record, files done, files in total)


# -- resolving ------------------------------------------------------------------------------


def resolve_predict_run(
    predict_config: PredictConfig,
    video_loader_config: Optional[VideoLoaderConfig] = None,
    *,
    video_loader_overrides: Optional[dict[str, Any]] = None,
    overrides_name: str = "video_loader_overrides",
) -> PredictRun:
    """The explicit step: find the files, fetch and read the checkpoint, pick the device and the
    loader config, and check the outputs can be written. Raises ConfigError (or another
    KifaruError) naming the problem before any clip is read.

    ``video_loader_config`` None: the checkpoint's own (kifaru records it), else the official
    one of the model's family. ``video_loader_overrides``: fields set on top of either; a bad one
    is reported as ``{overrides_name} FIELD=VALUE`` (the CLI's ``--set``).
    """
    from kifaru.models.checkpoint_info import read_checkpoint_info
    from kifaru.models.download import sha256_of
    from kifaru.models.official import default_model_name
    from kifaru.models.weights import model_cache_dir, stamped_sha256

    config = predict_config
    save_dir = Path(config.save_dir) if config.save_dir is not None else Path.cwd()
    files, duplicates, ignored = _input_files(config)
    checking_outputs = config.save and not config.dry_run and not config.overwrite
    if checking_outputs:  # before the checkpoint is fetched
        check_finished_outputs(save_dir / PROGRESS_FILE, _finished_outputs(save_dir), overwrite_hint=OVERWRITE_HINT)

    if config.checkpoint is not None:
        checkpoint_path = Path(config.checkpoint)
    else:
        checkpoint_path = _official_checkpoint(config)
    checkpoint = read_checkpoint_info(checkpoint_path)  # the description only: no weights, no PyTorch
    # As zamba does, a checkpoint's model_class decides its family (and so its default loader config).
    family = default_model_name(checkpoint.model_class)
    if config.checkpoint is not None and family and "model_name" in config.model_fields_set and config.model_name != family:
        warnings.warn(
            PredictWarning(f"model_name '{config.model_name}' is ignored: the checkpoint is a {checkpoint.model_class} ({family})"),
            stacklevel=2,
        )
    loader_config = video_loader_config or _default_loader_config(checkpoint, family)
    if video_loader_overrides:
        loader_config = _with_overrides(loader_config, video_loader_overrides, overrides_name)
    _check_frame_count(checkpoint, loader_config)
    if config.proba_threshold is not None and config.output_class_names:
        warnings.warn(PredictWarning("output_class_names is ignored: proba_threshold gives 0/1 per species"), stacklevel=2)
    device = _device(config.gpus)
    # The values used, as zamba records them in predict_configuration.yaml.
    resolved = config.model_copy(
        update={
            "checkpoint": checkpoint_path,
            "save_dir": save_dir,
            "model_name": family or config.model_name,
            "gpus": (config.gpus or 1) if device.startswith("cuda") else 0,
            "model_cache_dir": model_cache_dir(config.model_cache_dir),
        }
    )
    loader_config = _with_detector_device(loader_config, device)
    run = PredictRun(
        predict_config=resolved,
        video_loader_config=loader_config,
        checkpoint=checkpoint,
        # An official checkpoint was hashed when it was checked: its stamp says so while unchanged.
        checkpoint_sha256=stamped_sha256(checkpoint_path) or sha256_of(checkpoint_path),
        device=device,
        files=files,
        duplicates=duplicates,
        ignored=ignored,
    )
    if checking_outputs:  # an interrupted run here must have been made with these settings
        _earlier_records(run)
    return run


def _input_files(config: PredictConfig) -> tuple[list[InputFile], int, str]:
    from kifaru.inputs import list_videos, read_filepaths_csv

    if config.filepaths is not None:
        listed, duplicates = read_filepaths_csv(Path(config.filepaths), "filepaths")
        data_dir = config.data_dir
        files = [_input_file(str(Path(data_dir) / p) if data_dir is not None else p) for p in listed]
        if all(f.failure == "no such file" for f in files):
            raise ConfigError(
                f"filepaths {config.filepaths}: none of its {len(files)} files exist (e.g. {files[0].path}). "
                "Give absolute paths, or paths relative to data_dir."
            )
        return files, duplicates, ""
    if config.data_dir is None:
        raise ConfigError("give data_dir (a folder of videos) or filepaths (a CSV with a 'filepath' column)")
    listing = list_videos(Path(config.data_dir))
    if not listing.videos:
        images = " It holds images: kifaru predict works on videos." if listing.images_ignored else ""
        raise ConfigError(f"data_dir {config.data_dir}: no videos found in it (searched recursively).{images}")
    # As zamba does: files found in data_dir are written with their absolute path.
    return [_input_file(str(p.resolve())) for p in listing.videos], 0, listing.describe_ignored()


def _input_file(filepath: str) -> InputFile:
    path = Path(filepath)
    failure = None
    if path.name.startswith("._"):
        failure = "a macOS metadata file (the '._' companion of a copied file), not a video"
    elif path.is_dir():
        failure = "a folder, not a video file"
    elif not path.exists():
        failure = "no such file"
    return InputFile(filepath, path, failure)


OVERWRITE_HINT = "--overwrite (overwrite: true)"


def _finished_outputs(save_dir: Path) -> list[Path]:
    """As zamba: either file marks a finished run."""
    return [save_dir / PREDICTIONS_CSV, save_dir / CONFIGURATION_YAML]


def _earlier_records(run: PredictRun) -> dict[str, ClipRecord]:
    """The records of an interrupted run in save_dir that this run continues, by filepath (the
    rule of ``records_to_resume``); with overwrite, none (the progress file is deleted)."""
    items = records_to_resume(
        run.save_dir / PROGRESS_FILE,
        _progress_header(run),
        overwrite=bool(run.predict_config.overwrite),
        outputs=_finished_outputs(run.save_dir),
        overwrite_hint=OVERWRITE_HINT,
    )
    return {item["filepath"]: ClipRecord(**item) for item in items}


def _official_checkpoint(config: PredictConfig) -> Path:
    from kifaru.models.official import official_checkpoint

    return official_checkpoint(
        config.model_name,
        region=config.weight_download_region,
        cache_dir=Path(config.model_cache_dir) if config.model_cache_dir else None,
    )


def _default_loader_config(checkpoint: Any, family: Optional[str]) -> VideoLoaderConfig:
    """A kifaru checkpoint's own loader config, else the official one of its model family."""
    recorded = checkpoint.hyper_parameters.get("video_loader_config")
    if isinstance(recorded, dict):
        try:
            return VideoLoaderConfig.model_validate(recorded)
        except ValueError as error:
            raise ConfigError(f"checkpoint {checkpoint.path}: its video_loader_config is invalid ({error})") from None
    if family is None:
        raise ConfigError(
            f"checkpoint {checkpoint.path}: a {checkpoint.model_class} has no default video_loader_config; give one"
        )
    from kifaru.models.official import video_model_entry

    return video_model_entry(family).default_video_loader_config()


def _with_overrides(config: VideoLoaderConfig, overrides: dict[str, Any], name: str) -> VideoLoaderConfig:
    from kifaru.config.files import override_layers, validate_layered_config

    base = ("video_loader_config", {"video_loader_config": config.model_dump(exclude_unset=False)})
    return validate_layered_config([base, *override_layers(overrides, name)]).video_loader_config


def _check_frame_count(checkpoint: Any, config: VideoLoaderConfig) -> None:
    from kifaru.video.selection import wanted_total_frames

    needed = checkpoint.hyper_parameters.get("num_frames")
    total = wanted_total_frames(config) if config.ensure_total_frames else None
    if needed is not None and total is not None and int(needed) != total:
        raise ConfigError(
            f"video_loader_config gives {total} frames per video but the model takes {needed}: "
            f"set total_frames (and megadetector_lite_config.n_frames) to {needed}"
        )


def _with_detector_device(config: VideoLoaderConfig, device: str) -> VideoLoaderConfig:
    """The detector's device resolved (zamba records it): where it is not given, the run's GPU
    if it has one, else the CPU."""
    from kifaru.device import check_device

    detector = config.megadetector_lite_config
    if detector is None:
        return config
    if detector.device not in (None, "auto"):
        check_device(detector.device, "video_loader_config.megadetector_lite_config.device")
        return config
    detector_device = device if device.startswith("cuda") else "cpu"
    return config.model_copy(update={"megadetector_lite_config": detector.model_copy(update={"device": detector_device})})


def _device(gpus: Optional[int]) -> str:
    from kifaru.device import check_device

    device = check_device(gpus, "gpus")
    if gpus is not None and gpus > 1:
        warnings.warn(PredictWarning(f"gpus {gpus}: kifaru predict runs the model on one GPU"), stacklevel=3)
    return device


# -- running ---------------------------------------------------------------------------------


def choose_classifier_runtime(run: PredictRun) -> Any:
    """The run's classifier runtime (kifaru.models.runner.RuntimeChoice), chosen once: the ONNX
    export is made and checked here, before loading processes start (a first run of a checkpoint
    sends notices while it exports)."""
    from kifaru.models.runner import choose_runtime

    if run.classifier_runtime is None:
        cache_dir = Path(run.predict_config.model_cache_dir)
        run.classifier_runtime = choose_runtime(run.checkpoint, run.checkpoint_sha256, run.device, cache_dir)
    return run.classifier_runtime


def predict_model(
    predict_config: PredictConfig,
    video_loader_config: Optional[VideoLoaderConfig] = None,
    *,
    progress: Optional[ProgressCallback] = None,
    run: Optional[PredictRun] = None,
) -> PredictReport:
    """Predict every clip and write the outputs (unless ``save`` is false or it is a dry run).

    ``run``: an already resolved run (``resolve_predict_run``), e.g. to print what will happen
    before it starts.
    """
    run = run or resolve_predict_run(predict_config, video_loader_config)
    config = run.predict_config
    saving = config.save and not config.dry_run
    files = run.files[: config.batch_size] if config.dry_run else run.files
    header = _progress_header(run)
    progress_path = run.save_dir / PROGRESS_FILE
    earlier = _earlier_records(run) if saving else {}

    records: dict[str, ClipRecord] = {}
    unreadable, todo = [], []
    for index, item in enumerate(files):
        previous = earlier.get(item.filepath)
        if previous is not None and previous.fingerprint == file_fingerprint(item.path):
            records[item.filepath] = previous
        elif item.failure is not None:
            unreadable.append(ClipRecord(item.filepath, stage=STAGE_FILE, reason=item.failure))
        else:
            todo.append((index, item))
    resumed = len(records)
    if todo:
        choose_classifier_runtime(run)
    if saving:
        run.save_dir.mkdir(parents=True, exist_ok=True)
        _write_configuration(run, resuming=bool(earlier))
    if progress is not None:
        for count, record in enumerate(records.values(), 1):
            progress(record, count, len(files))

    with ProgressLog(progress_path, header) if saving else _NoLog() as log:

        def finish(record: ClipRecord) -> None:
            records[record.filepath] = record
            log.append(record.__dict__)
            if progress is not None:
                progress(record, len(records), len(files))

        try:
            for record in unreadable:
                finish(record)
            if todo:
                _predict_clips(run, todo, finish, saving)
        except KeyboardInterrupt as interrupt:
            # The clips finished get their outputs now (the CSVs hold only those); the progress
            # file stays, so the same command continues.
            finished = [records[item.filepath] for item in files if item.filepath in records]
            outputs = write_outputs(finished, run) if saving else {}
            raise Interrupted.after(interrupt, len(finished), len(files), outputs) from None

    ordered = [records[item.filepath] for item in files]
    outputs = {}
    if saving:
        outputs = write_outputs(ordered, run)
        progress_path.unlink(missing_ok=True)
    return PredictReport(run, ordered, resumed, outputs)


class _NoLog:
    """Stands in for the progress file when nothing is saved."""

    def __enter__(self) -> "_NoLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def append(self, record: dict[str, Any]) -> None:
        pass


def _predict_clips(run: PredictRun, todo: Sequence[tuple[int, InputFile]], finish: Callable[[ClipRecord], None], saving: bool) -> None:
    from kifaru.models.runner import load_classifier
    from kifaru.video.parallel import ClipLoader

    config = run.predict_config
    by_index = {index: item for index, item in todo}
    fingerprints = {index: file_fingerprint(item.path) for index, item in todo}
    # Workers start loading clips while the model is read into memory.
    detector = run.video_loader_config.megadetector_lite_config
    with ClipLoader(
        run.video_loader_config,
        run.loading_processes,
        detector_weights=_detector_weights(run.video_loader_config),
        detector_device=detector.device if detector is not None else None,
    ) as loader:
        results = loader.load([(index, item.path) for index, item in todo])
        classifier = load_classifier(
            run.checkpoint, run.checkpoint_sha256, run.device, Path(config.model_cache_dir), choose_classifier_runtime(run)
        )
        if classifier.runtime_choice != run.classifier_runtime:  # ONNX Runtime failed after all (a damaged export)
            run.classifier_runtime = classifier.runtime_choice
            notify(f"warning: the classifier runs in PyTorch: {run.classifier_runtime.fallback_reason}")
            if saving:
                _write_configuration(run, resuming=True)
        batch: list[ClipResult] = []

        def record(result: ClipResult, **outcome: Any) -> ClipRecord:
            return ClipRecord(by_index[result.index].filepath, fingerprint=fingerprints[result.index], notes=result.notes, **outcome)

        def flush() -> None:
            for result, probabilities in _run_batch(classifier, batch):
                if isinstance(probabilities, str):
                    finish(record(result, stage=STAGE_MODEL, reason=probabilities))
                else:
                    finish(record(result, probabilities=[float(p) for p in probabilities]))
            batch.clear()

        for result in results:
            if result.failed:
                finish(record(result, stage=result.failure_stage, reason=result.failure_reason))
                continue
            expected = classifier.num_frames
            if expected is not None and len(result.frames) != expected:
                reason = f"{len(result.frames)} frames were read, the model takes {expected}; set ensure_total_frames"
                finish(record(result, stage=STAGE_FRAMES, reason=reason))
                continue
            if batch and batch[0].frames.shape != result.frames.shape:
                flush()  # a batch holds clips of one shape
            batch.append(result)
            if len(batch) >= config.batch_size:
                flush()
        flush()


def _run_batch(classifier: Any, batch: list[ClipResult]) -> list[tuple[ClipResult, Any]]:
    """(clip, probabilities) for each clip; a clip the model fails on gets the reason instead."""
    if not batch:
        return []
    try:
        return list(zip(batch, classifier.predict_proba([r.frames for r in batch])))
    except Exception as error:
        if len(batch) == 1:
            return [(batch[0], f"the model failed on its frames ({type(error).__name__}: {error})")]
    # Find the clip(s) at fault: the others still get their predictions.
    return [pair for result in batch for pair in _run_batch(classifier, [result])]


def _detector_weights(config: VideoLoaderConfig) -> Optional[Path]:
    """Resolved here, once, so that no worker process downloads anything (nor exports the
    network to ONNX: each would, unseen)."""
    if config.megadetector_lite_config is None:
        return None
    from kifaru.detection.megadetector_lite import export_before_workers
    from kifaru.device import resolve_device
    from kifaru.models.registry import MEGADETECTOR_LITE
    from kifaru.models.weights import resolve_weights

    weights = resolve_weights(MEGADETECTOR_LITE)
    # resolve_weights checked the file against the registry: its sha256 is the entry's.
    export_before_workers(weights, MEGADETECTOR_LITE.weights_sha256, resolve_device(config.megadetector_lite_config.device))
    return weights


def _progress_header(run: PredictRun) -> dict[str, Any]:
    """What the records depend on: the checkpoint and how frames are read."""
    return {
        "kifaru_predict_progress": 1,
        "checkpoint_sha256": run.checkpoint_sha256,
        "video_loader_config": run.video_loader_config.model_dump(mode="json", exclude={"cache_dir", "cleanup_cache"}),
    }


# -- outputs ---------------------------------------------------------------------------------


def write_outputs(records: Sequence[ClipRecord], run: PredictRun) -> dict[str, Path]:
    """The predictions and failures CSVs, each replaced atomically."""
    outputs = {
        "predictions": run.save_dir / PREDICTIONS_CSV,
        "failures": run.save_dir / FAILURES_CSV,
    }
    write_text_atomically(outputs["predictions"], predictions_csv([r for r in records if not r.failed], run.species, run.predict_config))
    write_text_atomically(outputs["failures"], failures_csv([r for r in records if r.failed]))
    outputs["configuration"] = run.save_dir / CONFIGURATION_YAML
    return outputs


def predictions_csv(records: Iterable[ClipRecord], species: Sequence[str], config: PredictConfig) -> str:
    """zamba's ``zamba_predictions.csv``: written the way pandas' ``to_csv`` writes zamba's table."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if config.proba_threshold is None and config.output_class_names:
        writer.writerow(["filepath", "0"])  # zamba writes idxmax's unnamed Series
        for record in records:
            writer.writerow([record.filepath, species[int(np.argmax(record.probabilities))]])
        return out.getvalue()
    writer.writerow(["filepath", *species])
    for record in records:
        probabilities = np.asarray(record.probabilities, dtype=np.float32)
        if config.proba_threshold is not None:
            values = [int(p > config.proba_threshold) for p in probabilities]
        else:
            # float32 rounded to 5 places, printed as numpy prints float32 (pandas does the same)
            values = [str(v) for v in np.round(probabilities, 5)]
        writer.writerow([record.filepath, *values])
    return out.getvalue()


def failures_csv(records: Iterable[Any]) -> str:
    """filepath, stage, reason of each record (a ClipRecord, or anything with those three)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["filepath", "stage", "reason"])
    for record in records:
        writer.writerow([record.filepath, record.stage, record.reason])
    return out.getvalue()


# The keys kifaru adds to zamba's predict_configuration.yaml: the classifier's runtime
# ("onnxruntime" or "pytorch") and, after a fallback to PyTorch, why ONNX Runtime failed.
KIFARU_CONFIGURATION_KEYS = ("classifier_runtime", "classifier_runtime_fallback_reason")


def _write_configuration(run: PredictRun, resuming: bool) -> None:
    """zamba's ``predict_configuration.yaml``; a resumed run keeps the first start time."""
    path = run.save_dir / CONFIGURATION_YAML
    started = None
    if resuming:
        try:
            started = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("inference_start_time")
        except (OSError, yaml.YAMLError, AttributeError):
            started = None
    configuration = {
        "model_class": run.checkpoint.model_class,
        "species": run.species,
        "predict_config": run.predict_config.model_dump(mode="json", exclude={"filepaths"}),
        "inference_start_time": started or datetime.now(timezone.utc).replace(tzinfo=None).isoformat(),
        "video_loader_config": run.video_loader_config.model_dump(mode="json"),
    }
    if run.classifier_runtime is not None:  # kifaru's own: which runtime ran the classifier, and why
        runtime_key, reason_key = KIFARU_CONFIGURATION_KEYS
        configuration[runtime_key] = run.classifier_runtime.runtime
        if run.classifier_runtime.fallback_reason:
            configuration[reason_key] = run.classifier_runtime.fallback_reason
    write_text_atomically(path, yaml.safe_dump(configuration))

