"""``predict_model``: the probability of each species in every clip, written as zamba writes it.

A run on the engine (:mod:`kifaru.runs.engine`): clips are read (and their frames chosen by the
detector) in worker processes, where a clip that kills its worker becomes its failure record, and
the classifier runs here on batches of clips. Outputs in ``save_dir``, by name
(:mod:`kifaru.outputs`; ``output_formats``), each replaced atomically:

- "csv" (the default): ``zamba_predictions.csv``, exactly zamba's format, so downstream scripts
  keep working, and ``zamba_predictions_failures.csv``: ``filepath, stage, reason`` for every input
  file that has no prediction, and why (zamba would predict on frames of zeros or only log it;
  kifaru never predicts from frames it did not read);
- "megadetector": ``megadetector_predictions.json``, MegaDetector batch format 1.6 with the
  detector's boxes and the clip's species as classifications, paths relative to the data folder
  (or ``relative_to``), for Timelapse;
- always ``predict_configuration.yaml``: the model, its species and both configs, as zamba writes it.

Each clip's record is appended to the journal as it completes. An interrupted run (Ctrl-C,
kill -9, power loss) started again with the same settings skips the finished clips; the outputs it
writes at the end are those an uninterrupted run writes. Ctrl-C or SIGTERM also writes the outputs
for the clips finished before :class:`kifaru.exceptions.Interrupted` is raised.

A save_dir that holds an earlier run follows the journal's rule (``kifaru.runs.journal``): an
interrupted run with the same checkpoint and loader config is continued, one with other settings
is refused naming what differs, and the outputs of a finished run (no journal: it is deleted when
a run finishes) are refused as zamba refuses them; ``overwrite`` starts over.
"""


from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import yaml

from kifaru.config.run import PredictConfig
from kifaru.config.video import VideoLoaderConfig
from kifaru.files import write_text_atomically
from kifaru.notices import notify
from kifaru.outputs import write_outputs as _write_outputs
from kifaru.outputs.failures_csv import FAILURES_CSV  # noqa: F401 (kifaru.runs.predict's names)
from kifaru.outputs.zamba_csv import PREDICTIONS_CSV, predictions_csv  # noqa: F401
from kifaru.runs.backends import backend_for
from kifaru.runs.classifiers import classifiers_for
from kifaru.runs.engine import run_items
from kifaru.runs.inputs import Item
from kifaru.runs.records import STAGE_FRAMES, STAGE_MODEL, STATUS_FAILED, Record
from kifaru.runs.resolve import resolve_detector
from kifaru.runs.tasks import Loaded
from kifaru.runs.predict_setup import (  # noqa: F401 (kifaru.runs.predict's names)
    CONFIGURATION_YAML,
    DEFAULT_OUTPUT_FORMATS,
    MEGADETECTOR_JSON,
    OUTPUT_FILENAMES,
    OUTPUT_FORMATS,
    OUTPUT_KEYS,
    PROGRESS_FILE,
    PredictRun,
    PredictWarning,
    choose_classifier_runtime,
    resolve_predict_run,
)

@dataclass
class PredictReport:
    run: PredictRun
    records: list[Record]  # input order
    resumed: int  # clips done by an earlier, interrupted run
    outputs: dict[str, Path]
    photos: Any = None  # the ImagePredictReport of data_dir's photos (photos: image)

    @property
    def failed(self) -> list[Record]:
        return [r for r in self.records if r.failed]

    @property
    def predicted(self) -> list[Record]:
        return [r for r in self.records if not r.failed]

    def predictions_csv(self) -> str:
        return predictions_csv(self.records, self.run.description())


ProgressCallback = Callable[[Record, int, int], None]  # (record, files done, files in total)



# -- running ---------------------------------------------------------------------------------


def predict_model(
    predict_config: PredictConfig,
    video_loader_config: Optional[VideoLoaderConfig] = None,
    *,
    progress: Optional[ProgressCallback] = None,
    run: Optional[PredictRun] = None,
    output_formats: Sequence[str] = DEFAULT_OUTPUT_FORMATS,
    relative_to: Optional[Path] = None,
) -> PredictReport:
    """Predict every clip and write the outputs (unless ``save`` is false or it is a dry run).

    ``output_formats``: names of :data:`OUTPUT_FORMATS` ("csv", "megadetector"); ``relative_to``:
    the folder MegaDetector paths are relative to (see ``resolve_predict_run``). ``run``: an
    already resolved run (``resolve_predict_run``), e.g. to say what will happen before it starts.
    """
    run = run or resolve_predict_run(predict_config, video_loader_config, output_formats=output_formats, relative_to=relative_to)
    config = run.predict_config
    saving = config.save and not config.dry_run
    items = run.files[: config.batch_size] if config.dry_run else run.files

    def before_work(todo: Sequence[Item], resuming: bool) -> None:
        if todo:
            choose_classifier_runtime(run)
        if saving:
            run.save_dir.mkdir(parents=True, exist_ok=True)
            _write_configuration(run, resuming=resuming)

    def write(records: list[Record], partial: Optional[tuple[int, int]]) -> dict[str, Path]:
        return write_outputs(records, run, partial) if saving else {}

    result = run_items(
        items,
        lambda todo, finish: _predict_clips(run, todo, finish, saving),
        journal=run.journal() if saving else None,
        overwrite=bool(config.overwrite),
        write=write,
        progress=progress,
        before_work=before_work,
    )
    photos = None
    if run.photos_run is not None:  # the photos beside the videos, with their image model
        from kifaru.runs.image_predict import predict_images

        run.photos_run.backend, run.photos_run.ray_address = run.backend, run.ray_address  # where the videos ran
        photos = predict_images(run.photos_run.config, run=run.photos_run, progress=progress)
    return PredictReport(run, result.records, result.resumed, result.outputs, photos)


def _predict_clips(run: PredictRun, todo: Sequence[Item], finish: Callable[[Record], None], saving: bool) -> None:
    config = run.predict_config
    # Workers start loading clips while the model is read into memory.
    workers = run.loading_processes if run.backend == "local" else max(run.loading_processes, 1)  # Ray: loaded in its actors
    task = resolve_detector(run.video_loader_config, workers=workers).task("frames", run.video_loader_config, run.screen)
    with backend_for(task, run.loading_processes, run.backend, run.ray_address) as backend, _classifiers(run) as classifiers:
        results = backend.map(todo)
        chosen = classifiers.runtime_choice
        if chosen is not None and chosen != run.classifier_runtime:  # a GPU's on Ray; ONNX Runtime failed after all (a damaged export)
            run.classifier_runtime = chosen
            if chosen.fallback_reason:
                notify(f"warning: the classifier runs in PyTorch: {chosen.fallback_reason}")
            if saving:
                _write_configuration(run, resuming=True)
        batch: list[Loaded] = []

        def finish_classified(wait: bool = False) -> None:
            for loaded, probabilities in classifiers.completed(wait):
                record = loaded.record
                if isinstance(probabilities, str):
                    record.status, record.stage, record.reason = STATUS_FAILED, STAGE_MODEL, probabilities
                else:
                    record.outputs["probabilities"] = [float(p) for p in probabilities]
                finish(record)

        def flush() -> None:
            if batch:
                classifiers.submit(list(batch))
                batch.clear()
            finish_classified()

        for loaded in results:
            if loaded.record.failed or loaded.frames is None:  # failed, or decided by fast mode's screen
                finish(loaded.record)
                continue
            expected = classifiers.num_frames
            if expected is not None and len(loaded.frames) != expected:
                reason = f"{len(loaded.frames)} frames were read, the model takes {expected}; set ensure_total_frames"
                record = loaded.record
                record.status, record.stage, record.reason = STATUS_FAILED, STAGE_FRAMES, reason
                finish(record)
                continue
            if batch and batch[0].frames.shape != loaded.frames.shape:
                flush()  # a batch holds clips of one shape
            batch.append(loaded)
            if len(batch) >= config.batch_size:
                flush()
        flush()
        finish_classified(wait=True)


def _classifiers(run: PredictRun) -> Any:
    from functools import partial

    cache_dir = Path(run.predict_config.model_cache_dir)
    # Here: the runtime chosen before the run; in a Ray actor, the one its device gets.
    choice = choose_classifier_runtime(run) if run.backend == "local" else None
    load = partial(classifier_on, run.checkpoint, run.checkpoint_sha256, cache_dir, choice)
    return classifiers_for(
        run.backend, load, classify_batch, frames_of, device=run.device, model_class=run.checkpoint.model_class,
        ray_address=run.ray_address, use_gpus=run.gpus_asked != 0,
    )  # fmt: skip


def classifier_on(checkpoint: Any, checkpoint_sha256: str, cache_dir: Path, choice: Any, device: str) -> Any:
    from kifaru.models.runner import load_classifier

    return load_classifier(checkpoint, checkpoint_sha256, device, cache_dir, choice)


def frames_of(loaded: Loaded) -> Any:
    return loaded.frames


def classify_batch(classifier: Any, clips: list[Any]) -> list[Any]:
    """Each clip's probabilities; a clip the model fails on gets the reason instead.

    Each clip is its own model call: a network's float32 results shift in their last bits with
    the batch around an input (its size changes the kernels, its position the threads' split),
    and batches follow the order clips finish loading in. Alone, a clip's probabilities are the
    same bytes in every run: with workers or without, resumed, on Ray or in merged shards. The
    16 frames of a clip keep the cores busy on their own."""
    results = []
    for clip in clips:
        try:
            results.append(classifier.predict_proba([clip])[0])
        except Exception as error:
            results.append(f"the model failed on its frames ({type(error).__name__}: {error})")
    return results


# -- outputs ---------------------------------------------------------------------------------


def write_outputs(records: Sequence[Record], run: PredictRun, partial: Optional[tuple[int, int]] = None) -> dict[str, Path]:
    """The run's outputs by name (each replaced atomically), and its configuration file's path."""
    from kifaru.segments.crops import label_segments

    label_segments(records, run.segment_classifier, run.description().animal_threshold(), run.base, partial)
    written = _write_outputs(run.save_dir, run.writers, records, run.description(partial), OUTPUT_FILENAMES)
    outputs = {OUTPUT_KEYS.get(name, name): path for name, path in written.items()}
    outputs["configuration"] = run.save_dir / CONFIGURATION_YAML
    return outputs


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
        # zamba's keys only (zamba reads this file back as a config); kifaru's photos and preset apart.
        "predict_config": run.predict_config.model_dump(mode="json", exclude={"filepaths", "photos", "preset"}),
        "inference_start_time": started or datetime.now(timezone.utc).replace(tzinfo=None).isoformat(),
        "video_loader_config": run.video_loader_config.model_dump(mode="json"),
    }
    if run.predict_config.photos is not None:
        configuration["photos"] = str(run.predict_config.photos)
    if run.predict_config.preset != "exact":
        configuration["preset"] = str(run.predict_config.preset)
        if run.screen is not None:
            configuration["screen"] = run.screen.describe()
    if run.classifier_runtime is not None:  # kifaru's own: which runtime ran the classifier, and why
        runtime_key, reason_key = KIFARU_CONFIGURATION_KEYS
        configuration[runtime_key] = run.classifier_runtime.runtime
        if run.classifier_runtime.fallback_reason:
            configuration[reason_key] = run.classifier_runtime.fallback_reason
    write_text_atomically(path, yaml.safe_dump(configuration))

