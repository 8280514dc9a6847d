"""``predict_images``: the species in every photo, one row per animal the detector found (or per
photo), written as zamba's ``zamba image predict`` writes them.

A run on the engine (kifaru.runs.engine): photos are read, and the animals in them found by the
detector chosen by name (kifaru.detection.registry), in worker processes, where a photo that kills
its worker becomes its failure record; the classifier runs here on batches of crops. Unlike zamba
2.7.2, every photo gets rows or a failure record:

- ``crop_images: true`` (the default): one row per detection at or above ``detections_threshold``
  (its category, confidence, pixel box and the species probabilities of its crop); a photo in
  which nothing reaches it gets one row with no box and no probabilities (zamba drops the photo);
- ``crop_images: false``: one row per photo, classified whole (zamba crops anyway);
- a photo that cannot be used: a row of ``zamba_predictions_failures.csv`` (``filepath, stage,
  reason``), and a ``failure`` entry in MegaDetector output.

Outputs in ``save_dir``: ``results_file_name`` (``zamba_predictions.csv``, or ``.json`` for
``results_file_format: megadetector``: MegaDetector batch format 1.6 with each crop's species as
its detection's classifications, paths relative to ``data_dir`` or ``relative_to``), the failures
CSV, and ``image_predict_configuration.yaml``. Each photo's record goes to the journal as it is
done: a stopped run started again with the same settings continues; other settings are refused.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import yaml

from kifaru.config.image import ImagePredictConfig, ResultsFormat
from kifaru.files import write_text_atomically
from kifaru.outputs import RunDescription, write_outputs
from kifaru.outputs.results_file import RESULTS_FILE
from kifaru.runs.backends import backend_for
from kifaru.runs.classifiers import classifiers_for
from kifaru.runs.engine import run_items
from kifaru.runs.image_tasks import GivenBox, LoadedPhoto, LoadPhoto, PhotoSettings
from kifaru.runs.image_inputs import given_boxes, given_sequence_ids, input_photos
from kifaru.runs.inputs import Item
from kifaru.runs.journal import Journal, check_finished_outputs
from kifaru.runs.records import STAGE_MODEL, STATUS_FAILED, Record
from kifaru.runs.shards import run_settings, select_shard

if TYPE_CHECKING:
    from kifaru.images.sequences import Grouping

CONFIGURATION_YAML = "image_predict_configuration.yaml"
PROGRESS_FILE = ".kifaru-image-predict-progress.jsonl"
OVERWRITE_HINT = "--overwrite (overwrite: true)"
ProgressCallback = Callable[[Record, int, int], None]


class ImagePredictWarning(UserWarning):
    """Something about an image prediction run the user should know."""


@dataclass
class ImageRun:
    """Everything an image prediction run needs, resolved: photos, model, detector, outputs."""

    config: ImagePredictConfig  # with checkpoint, model_name and save_dir filled in
    checkpoint: Any  # kifaru.models.checkpoint_info.VideoModelCheckpoint, without its weights
    checkpoint_sha256: str
    family: str
    image_size: int
    device: str
    files: list[Item]
    duplicates: int = 0
    ignored: str = ""
    photo_settings: Optional[PhotoSettings] = None
    root: Optional[Path] = None
    base: Path = field(default_factory=Path.cwd)
    detector: Any = None  # a loaded detector to run in this process (tests), else the task loads one
    given_seq_ids: dict[str, str] = field(default_factory=dict)  # photo -> the seq_id column's
    results_file: str = RESULTS_FILE  # the records in full (kifaru.outputs.results_file)
    backend: str = "local"  # where photos are read and classified: or "ray" (kifaru.runs.ray_backend)
    ray_address: Optional[str] = None
    gpus_asked: Optional[int] = None  # the config's gpus as given: 0 keeps a Ray run's classifier off the GPUs
    shard: Any = None  # kifaru.runs.shards.ShardSelection: this run's part of the photos (whole bursts)

    @property
    def sequences_on(self) -> bool:
        """Bursts: asked for (``sequences: true``), or given by a seq_id column of the filepaths."""
        return self.config.sequences or bool(self.given_seq_ids)

    @property
    def sequences_name(self) -> str:
        return f"{Path(self.results_name).stem}_sequences.csv"

    def grouping(self, records: Sequence[Record]) -> Optional["Grouping"]:
        """Each photo's sequence (None without sequences)."""
        return group_records(records, self.given_seq_ids, self.config.sequence_gap_seconds) if self.sequences_on else None

    @property
    def species(self) -> list[str]:
        return list(self.checkpoint.species)

    @property
    def save_dir(self) -> Path:
        return Path(self.config.save_dir)

    @property
    def results_name(self) -> str:
        return self.config.results_path_name

    @property
    def writers(self) -> dict[str, str]:
        """writer name -> file name."""
        if self.config.results_file_format == ResultsFormat.megadetector:
            writers = {"megadetector_json": self.results_name}
        else:
            # zamba_predictions_failures.csv for zamba's default name; beside a video run's, its own.
            writers = {"zamba_image_csv": self.results_name, "failures_csv": f"{Path(self.results_name).stem}_failures.csv"}
        if self.sequences_on:
            writers["sequence_csv"] = self.sequences_name
        return {**writers, "results_jsonl": self.results_file}

    @property
    def loading_processes(self) -> int:
        from kifaru.runtime.device import usable_cores

        return min(self.config.num_workers, usable_cores())

    def finished_outputs(self) -> list[Path]:
        return [self.save_dir / self.results_name]

    def journal(self) -> Journal:
        settings = self.photo_settings
        header = {
            "kifaru_image_predict_progress": 1,
            "checkpoint_sha256": self.checkpoint_sha256,
            "family": self.family,
            "image_size": self.image_size,
            "crop_images": self.config.crop_images,
            "detections_threshold": self.config.detections_threshold,
            "detector": None if settings is None or settings.given_boxes is not None else self.config.detector,
            "given_boxes": None if settings is None or settings.given_boxes is None else _digest(settings.given_boxes),
        }
        if self.shard is not None:
            header["shard"] = str(self.shard.shard)
        return Journal(self.save_dir / PROGRESS_FILE, header, outputs=self.finished_outputs(), overwrite_hint=OVERWRITE_HINT)

    def description(self, partial: Optional[tuple[int, int]] = None, records: Sequence[Record] = ()) -> RunDescription:
        settings = self.photo_settings
        detector = None
        if self.config.crop_images and settings is not None:
            detector = {
                "name": "boxes given" if settings.given_boxes is not None else self.config.detector,
                "detections_threshold": self.config.detections_threshold,
                "boxes_kept_down_to": settings.kept_threshold,
            }
        return RunDescription(
            "image predict",
            species=self.species,
            predict_config=self.config,
            model=Path(self.config.checkpoint).name,
            model_sha256=self.checkpoint_sha256,
            threshold=self.config.detections_threshold,
            root=self.root,
            base=self.base,
            partial=partial,
            detector=detector,
            sequences=self.grouping(records),
            aggregation=self.config.aggregation,
            settings=run_settings(self.journal().header),
            outputs=dict(self.writers),
            shard=self.shard.describe() if self.shard is not None else None,
        )


def group_records(records: Sequence[Record], given_seq_ids: dict[str, str], gap_seconds: float) -> "Grouping":
    """The photos' sequences. Given seq_ids keep every photo, failed ones too; grouping by time
    leaves out the photos that failed (their time is unknown)."""
    from kifaru.images.sequences import PhotoInBurst, group_sequences

    photos = [PhotoInBurst(r.item, _taken(r), given_seq_ids.get(r.item)) for r in records if r.item in given_seq_ids or not r.failed]
    return group_sequences(photos, gap_seconds)


def _taken(record: Record) -> Optional[datetime]:
    taken = record.outputs.get("taken")
    return datetime.fromisoformat(taken) if taken else None


def _digest(boxes: dict[str, list[GivenBox]]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(boxes, sort_keys=True).encode()).hexdigest()[:16]


# -- resolving ------------------------------------------------------------------------------


def resolve_image_run(
    config: ImagePredictConfig,
    *,
    relative_to: Optional[Path] = None,
    detections_file: Optional[Path] = None,
    detector: Any = None,
    shard: Any = None,
) -> ImageRun:
    """The explicit step: find the photos, fetch and read the checkpoint, pick the device, prepare
    the detector (weights fetched and checked before any worker starts) and check the outputs can
    be written. Raises ConfigError (or another KifaruError) naming the problem before any photo is
    read. ``detections_file``: a MegaDetector batch JSON whose boxes are cropped instead of
    running a detector; ``detector``: a loaded detector (``find``) to use in this process (tests);
    ``shard``: a :class:`kifaru.runs.shards.Shard`, this run's part of the photos, each burst kept
    whole (by its given seq_id, else its camera folder) when sequences are on."""
    from kifaru.detection.registry import DETECTORS
    from kifaru.images.preprocess import family_of, input_size
    from kifaru.models.checkpoint_info import read_checkpoint_info
    from kifaru.models.download import sha256_of
    from kifaru.models.model_classes import require_media
    from kifaru.models.weights import model_cache_dir, stamped_sha256
    from kifaru.outputs.paths import choose_root

    save_dir = Path(config.save_dir) if config.save_dir is not None else Path.cwd()
    files, duplicates, ignored = input_photos(config)
    base = Path.cwd()
    given_seq_ids = given_sequence_ids(Path(config.filepaths) if config.filepaths is not None else None, config.data_dir)
    selection = None
    if shard is not None:
        from kifaru.images.sequences import burst_key

        def burst(key: str, item: Item) -> str:
            return burst_key(key, given_seq_ids.get(item.name))

        selection = select_shard(files, shard, base, group=burst if config.sequences or given_seq_ids else None)
        files = selection.items
    root = None
    if config.results_file_format == ResultsFormat.megadetector or detections_file is not None:
        data_dir = Path(config.data_dir) if config.data_dir is not None else None
        root = choose_root([item.name for item in files], base, relative_to=relative_to, data_dir=data_dir)
    checking = config.save and not config.overwrite
    if checking:
        check_finished_outputs(save_dir / PROGRESS_FILE, [save_dir / config.results_path_name], overwrite_hint=OVERWRITE_HINT)

    checkpoint_path = Path(config.checkpoint) if config.checkpoint is not None else _official_checkpoint(config)
    checkpoint = read_checkpoint_info(checkpoint_path)
    require_media(checkpoint.model_class, "image", checkpoint_path)
    family = family_of(checkpoint.hyper_parameters)
    size = input_size(checkpoint.hyper_parameters, family, config.image_size)
    device = _device(config.gpus)
    resolved = config.model_copy(
        update={
            "checkpoint": checkpoint_path,
            "save_dir": save_dir,
            "model_name": config.model_name if config.checkpoint is None else None,
            "model_cache_dir": model_cache_dir(config.model_cache_dir),
            "image_size": size,
        }
    )
    entry = DETECTORS[config.detector]
    given = given_boxes(detections_file, files, root, base) if detections_file is not None else None
    weights = None
    if config.crop_images and given is None and detector is None:
        weights = entry.prepare(None, device if device.startswith("cuda") else "cpu")
    settings = PhotoSettings(
        crop_images=config.crop_images,
        detections_threshold=config.detections_threshold,
        family=family.name,
        image_size=size,
        detector=config.detector if config.crop_images and given is None else None,
        detector_weights=weights,
        device=device if device.startswith("cuda") else "cpu",
        given_boxes=given,
        kept_threshold=min(entry.kept_threshold, config.detections_threshold),
    )
    run = ImageRun(
        config=resolved,
        checkpoint=checkpoint,
        checkpoint_sha256=stamped_sha256(checkpoint_path) or sha256_of(checkpoint_path),
        family=family.name,
        image_size=size,
        device=device,
        gpus_asked=config.gpus,
        files=files,
        duplicates=duplicates,
        ignored=ignored,
        photo_settings=settings,
        root=root,
        base=base,
        detector=detector,
        given_seq_ids=given_seq_ids,
        shard=selection,
    )
    if checking:
        run.journal().earlier()  # an interrupted run here must have been made with these settings
    return run


def _official_checkpoint(config: ImagePredictConfig) -> Path:
    from kifaru.models.registry import image_model_entry
    from kifaru.models.s3 import normalize_region
    from kifaru.models.weights import resolve_weights

    entry = image_model_entry(config.model_name or "")
    cache_dir = Path(config.model_cache_dir) if config.model_cache_dir else None
    return resolve_weights(entry, region=normalize_region(config.weight_download_region), cache_dir=cache_dir)


def _device(gpus: Optional[int]) -> str:
    from kifaru.runtime.device import check_device

    device = check_device(gpus, "gpus")
    if gpus is not None and gpus > 1:
        warnings.warn(ImagePredictWarning(f"gpus {gpus}: kifaru image predict runs the model on one GPU"), stacklevel=3)
    return device


# -- running ---------------------------------------------------------------------------------


@dataclass
class ImagePredictReport:
    run: ImageRun
    records: list[Record]
    resumed: int
    outputs: dict[str, Path]

    @property
    def failed(self) -> list[Record]:
        return [r for r in self.records if r.failed]

    @property
    def predicted(self) -> list[Record]:
        return [r for r in self.records if not r.failed]

    def predictions_csv(self) -> str:
        from kifaru.outputs.zamba_image_csv import image_predictions_csv

        return image_predictions_csv(self.records, self.run.description(records=self.records))

    @property
    def grouping(self) -> Optional["Grouping"]:
        return self.run.grouping(self.records)


def predict_images(
    config: ImagePredictConfig, *, run: Optional[ImageRun] = None, progress: Optional[ProgressCallback] = None, relative_to: Optional[Path] = None
) -> ImagePredictReport:
    """Predict every photo and write the outputs (unless ``save`` is false); see the module."""
    run = run or resolve_image_run(config, relative_to=relative_to)
    saving = run.config.save

    def before_work(todo: Sequence[Item], resuming: bool) -> None:
        if saving:
            run.save_dir.mkdir(parents=True, exist_ok=True)
            _write_configuration(run, resuming)

    def write(records: list[Record], partial: Optional[tuple[int, int]]) -> dict[str, Path]:
        if not saving:
            return {}
        filenames = run.writers
        written = write_outputs(run.save_dir, list(filenames), records, run.description(partial, records), filenames)
        return {**written, "configuration": run.save_dir / CONFIGURATION_YAML}

    result = run_items(
        run.files,
        lambda todo, finish: _predict_photos(run, todo, finish),
        journal=run.journal() if saving else None,
        overwrite=bool(run.config.overwrite),
        write=write,
        progress=progress,
        before_work=before_work,
    )
    return ImagePredictReport(run, result.records, result.resumed, result.outputs)


def _predict_photos(run: ImageRun, todo: Sequence[Item], finish: Callable[[Record], None]) -> None:
    from functools import partial

    task = LoadPhoto(run.photo_settings, detector=run.detector)
    workers = 0 if task.detector is not None else run.loading_processes
    load = partial(_image_classifier_on, run.checkpoint.path, run.image_size)
    with backend_for(task, workers, run.backend, run.ray_address) as backend, classifiers_for(
        run.backend, load, classify_photos, _crops_of, device=run.device, model_class=run.checkpoint.model_class,
        ray_address=run.ray_address, use_gpus=run.gpus_asked != 0,
    ) as classifiers:  # fmt: skip
        results = backend.map(todo)  # workers start reading photos while the model is loaded
        batch: list[LoadedPhoto] = []

        def finish_classified(wait: bool = False) -> None:
            for loaded, probabilities in classifiers.completed(wait):
                record = loaded.record
                if isinstance(probabilities, str):
                    record.status, record.stage, record.reason = STATUS_FAILED, STAGE_MODEL, probabilities
                else:
                    for crop, row in zip(record.outputs["crops"], probabilities):
                        crop["probabilities"] = [float(p) for p in row]
                finish(record)

        def flush() -> None:
            if batch:
                classifiers.submit(list(batch))
                batch.clear()
            finish_classified()

        for loaded in results:
            if loaded.inputs is None:  # a failure, or a photo with nothing to classify
                finish(loaded.record)
                continue
            batch.append(loaded)
            if sum(len(b.inputs) for b in batch) >= run.config.batch_size:
                flush()
        flush()
        finish_classified(wait=True)


def _image_classifier_on(checkpoint: Path, image_size: int, device: str) -> Any:
    from kifaru.images.classifier import ImageClassifier

    return ImageClassifier.from_file(checkpoint, device, image_size)


def _crops_of(loaded: LoadedPhoto) -> Any:
    return loaded.inputs


def classify_photos(classifier: Any, photos: list[Any]) -> list[Any]:
    """Each photo's probabilities, a row per input (crop or whole photo); a photo the model fails
    on gets the reason instead. Each photo is its own model call, so that its probabilities are
    the same bytes whichever photos share its batch (see kifaru.runs.predict.classify_batch)."""
    results = []
    for inputs in photos:
        try:
            results.append(classifier.predict_proba(inputs))
        except Exception as error:
            results.append(f"the model failed on its crops ({type(error).__name__}: {error})")
    return results


def _write_configuration(run: ImageRun, resuming: bool) -> None:
    path = run.save_dir / CONFIGURATION_YAML
    started = None
    if resuming:
        try:
            started = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("inference_start_time")
        except (OSError, yaml.YAMLError, AttributeError):
            started = None
    configuration = {
        "model_class": run.checkpoint.model_class,
        "model_name": run.checkpoint.hyper_parameters.get("model_name"),
        "model_family": run.family,
        "species": run.species,
        "predict_config": run.config.model_dump(mode="json", exclude={"filepaths"}),
        "inference_start_time": started or datetime.now(timezone.utc).replace(tzinfo=None).isoformat(),
        "classifier_runtime": "pytorch",
    }
    write_text_atomically(path, yaml.safe_dump(configuration))
