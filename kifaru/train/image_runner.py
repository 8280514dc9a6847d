"""``train_images``: a labels file of photos (or of sequences) in, an image classifier in zamba's
checkpoint format out (``zamba image train``'s outputs, which zamba and ``kifaru image predict``
load).

The steps, in order: read the labels (kifaru.train.image_labels); resolve the model (an image
checkpoint, the official one by name, or a new timm network with ``from_scratch``), the device and
the detector (weights fetched before any worker starts); read every photo once and find its
animals (kifaru.train.image_data: unreadable photos and photos with nothing found are reported,
never trained on); split, keeping groups together; train with Lightning (zamba's loss and
optimiser, the learning-rate finder when ``lr`` is not given, early stopping on ``val_loss``, the
best checkpoint, ``last.ckpt`` to resume from, TensorBoard); then score the best weights on the
val and test photos per crop, per image and per sequence.

Outputs in ``save_dir``: ``<model_name>.ckpt`` (zamba's name), ``train_configuration.yaml``,
``val_metrics.json`` / ``test_metrics.json``, and kifaru's ``splits.csv`` and ``failures.csv``
(the photos not trained on and why), Lightning's checkpoints in ``checkpoint_path`` (default
``save_dir/checkpoints``) and the TensorBoard logs.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from kifaru.config.image import ImageTrainConfig
from kifaru.config.run import EarlyStoppingConfig
from kifaru.exceptions import ConfigError, NoUsableInputError, UnsupportedOptionError
from kifaru.files import write_text_atomically
from kifaru.runs.records import Record
from kifaru.train import lightning_steps as steps
from kifaru.train.image_labels import LabelledPhotos, image_splits_csv, read_image_labels, split_photos
from kifaru.train.labels import LabelsWarning, output_species
from kifaru.train.version_dir import LAST_CHECKPOINT

TRAIN_CONFIGURATION_YAML = "train_configuration.yaml"
SPLITS_CSV = "splits.csv"
FAILURES_CSV = "failures.csv"
CHECKPOINTS_DIR = "checkpoints"
LOGS_DIR = "logs"  # TensorBoard (and csv) logs
ProgressCallback = Callable[[Record, int, int], None]


@dataclass
class ImageTrainReport:
    save_dir: Path
    checkpoint: Path  # the best weights, zamba's format
    species: list[str]
    photos: LabelledPhotos  # the photos trained and scored on, with their splits
    crops: int  # the network's training items (crops, or whole photos)
    failures: list[Record]  # the photos not trained on, with the reason
    lr: float
    epochs: int = 0
    val_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class _ModelSource:
    checkpoint: Any  # a VideoModelCheckpoint with its weights, or None for a new network
    timm_name: str
    family: Any  # kifaru.images.preprocess.ImageFamily
    species: list[str]  # the model's own (none for a new network)
    hyper_parameters: dict[str, Any]
    name: str  # the trained checkpoint's file stem (zamba: model_name)


@dataclass
class _TrainerSettings:
    """The fields of a TrainConfig that kifaru.train.lightning_steps.build_trainer reads."""

    max_epochs: int
    early_stopping_config: Optional[EarlyStoppingConfig]
    checkpointing: Any
    loggers: list[str]
    accumulate_grad_batches: int
    dry_run: bool = False
    backbone_finetune_config: Any = None


def train_images(config: ImageTrainConfig, *, detector: Any = None, progress: Optional[ProgressCallback] = None) -> ImageTrainReport:
    """Train as ``zamba image train`` does; see the module. ``detector``: a loaded detector
    (``find``) to run in this process (tests); ``progress(record, done, total)`` while photos are read."""
    import time

    from kifaru.exceptions import TrainingInterrupted

    started = time.time()
    store = crop_folder(config)
    try:
        with steps.without_third_party_noise():
            return _train_images(config, detector, progress, store)
    except KeyboardInterrupt as interrupt:
        if isinstance(interrupt, TrainingInterrupted):
            raise
        save_dir = Path(config.save_dir) if config.save_dir is not None else Path.cwd()
        last = (Path(config.checkpoint_path) if config.checkpoint_path is not None else save_dir / CHECKPOINTS_DIR) / LAST_CHECKPOINT
        written = last if last.is_file() and last.stat().st_mtime >= started else None
        epochs = 0
        if written is not None:
            import torch

            epochs = int(torch.load(written, map_location="cpu", weights_only=False).get("epoch", 0))  # the epochs finished
        raise TrainingInterrupted(getattr(interrupt, "signal_name", "SIGINT"), save_dir, written, epochs) from None
    finally:
        import shutil

        shutil.rmtree(store, ignore_errors=True)


def crop_folder(config: ImageTrainConfig) -> Path:
    """Where this run keeps its crops while it trains (removed when it ends): a new folder in
    ``cache_dir``, else in the user's cache folder."""
    import os
    import uuid

    import platformdirs

    parent = Path(config.cache_dir) if config.cache_dir is not None else Path(platformdirs.user_cache_dir("kifaru")) / "image_crops"
    return parent / f"run-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _train_images(config: ImageTrainConfig, detector: Any, progress: Optional[ProgressCallback], store: Path) -> ImageTrainReport:
    import numpy as np
    import pytorch_lightning as pl

    from kifaru.images.preprocess import input_size
    from kifaru.train.image_data import CropDataset, labelled_boxes, load_crops, photo_augmenter
    from kifaru.train.image_module import ImageClassificationModule, balanced_class_weights
    from kifaru.train.module import optimizer_class

    _refuse_what_is_not_done(config)
    optimizer_class(config.optimizer)  # an unknown name is said now, not after the crops are made
    if config.seed is not None:
        pl.seed_everything(config.seed, workers=True, verbose=False)
    if not Path(config.data_dir).is_dir():
        raise ConfigError(f"data_dir {config.data_dir}: no such folder")
    save_dir = Path(config.save_dir) if config.save_dir is not None else Path.cwd()
    source = _model_source(config)
    destination = save_dir / f"{source.name}.ckpt"
    if destination.exists() and not config.overwrite and config.resume_from is None:
        raise ConfigError(f"{save_dir} already holds {destination.name}: choose another save_dir, or pass --overwrite (overwrite: true) to replace it")
    photos = read_image_labels(
        config.labels, config.data_dir, sequence_files=config.sequence_files, split_by=config.split_by,
        species_in_label_order=config.species_in_label_order, labels_format=config.labels_format,
    )  # fmt: skip
    for note in photos.notes:
        warnings.warn(LabelsWarning(f"labels {config.labels}: {note}"), stacklevel=3)
    species, kept_head = output_species(photos.species, str(config.labels), source.species, config.use_default_model_labels)
    if kept_head:
        photos = photos.with_species(species)
    device = _device(config)
    size = input_size(source.hyper_parameters, source.family, config.image_size)
    given = labelled_boxes(photos) if photos.boxes is not None and config.crop_images else None
    settings = _photo_settings(config, source.family.name, size, device, detector, given)

    crops = load_crops(photos.filepaths, settings, config.num_workers, store, detector, progress)
    used = sorted(set(crops.photo))
    if not used:
        first = crops.failures[0] if crops.failures else None
        raise NoUsableInputError(f"labels {config.labels}: none of its {len(photos.filepaths)} photos can be trained on" + (f" (e.g. {first.item}: {first.reason})" if first else ""))
    renumber = {old: new for new, old in enumerate(used)}
    crops.photo = [renumber[p] for p in crops.photo]
    photos = split_photos(photos.keep({photos.filepaths[i] for i in used}), config.split_proportions)
    if config.debug is not None:
        photos, crops = _debug_sample(photos, crops, config.debug)
    if crops.failures:
        warnings.warn(LabelsWarning(f"{len(crops.failures)} labelled photo(s) are not trained on (see {FAILURES_CSV})"), stacklevel=3)

    family = source.family
    subsets = {split: crops.of(photos.indices(split)) for split in ("train", "val", "test")}
    if not subsets["train"]:
        raise ConfigError("no photo is in the train split; check the split column or split_proportions")
    if given is not None:  # each box its own row's class
        shares = np.array([photos.box_targets(p, d) for p, d in zip(crops.photo, crops.detection)], dtype=np.float32)
    else:
        shares = photos.targets[crops.photo].astype(np.float32)

    def dataset(split: str, augment: bool = False) -> CropDataset:
        members = subsets[split]
        augmenter = photo_augmenter(size, config.extra_train_augmentations, config.augmentations) if augment else None
        return CropDataset([crops.pixels[i] for i in members], shares[members], family, augmenter, erase=augment and config.extra_train_augmentations)

    train_set = dataset("train", augment=True)
    train_loader = steps.data_loader(train_set, config.batch_size, config.num_workers, shuffle=True)
    val_loader = steps.data_loader(steps.NumberedClips(dataset("val")), config.batch_size, config.num_workers, shuffle=False) if subsets["val"] else None
    test_loader = steps.data_loader(steps.NumberedClips(dataset("test")), config.batch_size, config.num_workers, shuffle=False) if subsets["test"] else None

    network = _network(config, source, species, kept_head)
    lr = config.lr or float(source.hyper_parameters.get("lr") or 1e-5)
    hparams = {
        "lr": lr, "image_size": size, "batch_size": config.batch_size, "model_name": source.timm_name, "species": species,
        **_scheduler(config, source), "model_family": family.name, "model_class": "ImageClassifierModule",
    }  # fmt: skip
    weights = balanced_class_weights(shares[subsets["train"]]) if config.weighted_loss else None
    module = ImageClassificationModule(
        network, species, hparams, len(train_loader), weights, weight_decay=config.weight_decay,
        optimizer=config.optimizer, optimizer_params=config.optimizer_params,
    )  # fmt: skip
    checkpoints = Path(config.checkpoint_path) if config.checkpoint_path is not None else save_dir / CHECKPOINTS_DIR
    trainer_settings = _TrainerSettings(
        # zamba's: early stopping and the best checkpoint on val_loss; checkpointing.monitor may
        # name val_macro_f1 for both (val_loss rises as a small set is overfitted while F1 still gains).
        config.max_epochs, EarlyStoppingConfig(monitor=config.checkpointing.monitor or "val_loss", patience=config.early_stopping_patience),
        config.checkpointing,
        config.loggers, config.accumulate_grad_batches,
    )  # fmt: skip
    accelerator = "gpu" if device.startswith("cuda") else "cpu"
    save_dir.mkdir(parents=True, exist_ok=True)
    trainer, best = steps.build_trainer(trainer_settings, save_dir / LOGS_DIR, accelerator, 1, "auto", val_loader is not None, False, checkpoints)
    if config.lr is None and config.resume_from is None:
        _find_lr(trainer, module, train_loader)
        hparams["lr"] = module.lr
    started = datetime.now(timezone.utc).isoformat()
    write_text_atomically(save_dir / SPLITS_CSV, image_splits_csv(photos))
    write_text_atomically(save_dir / FAILURES_CSV, _failures_csv(crops.failures))
    write_text_atomically(save_dir / TRAIN_CONFIGURATION_YAML, _configuration_yaml(config, species, module.lr, started))
    steps.run_lightning(trainer.fit, module, train_loader, val_loader, ckpt_path=str(config.resume_from) if config.resume_from else None)

    report = ImageTrainReport(save_dir, destination, species, photos, len(crops.pixels), crops.failures, module.lr, epochs=trainer.current_epoch)
    best_path = best.best_model_path or best.last_model_path
    report.val_metrics, report.test_metrics = _score_best(trainer, module, best_path, val_loader, test_loader, subsets, crops, photos, config, dataset)
    for name, metrics in (("val_metrics.json", report.val_metrics), ("test_metrics.json", report.test_metrics)):
        if metrics:
            write_text_atomically(save_dir / name, json.dumps(metrics, indent=2))
    steps.export_best(best_path, module, destination, hparams, trainer.global_step)
    return report


def _refuse_what_is_not_done(config: ImageTrainConfig) -> None:
    """Options kifaru does not carry out (yet) are refused or named, never silently ignored."""
    if "mlflow_tracking_uri" in config.model_fields_set and config.mlflow_tracking_uri is not None:
        warnings.warn(LabelsWarning("mlflow_tracking_uri: not used (kifaru logs to TensorBoard: loggers)"), stacklevel=4)
    if config.batch_size is None:
        raise UnsupportedOptionError("batch_size null (zamba then searches for the largest batch that fits): give a number; zamba's default is 16")
    if isinstance(config.devices, int) and config.devices > 1 or isinstance(config.devices, list) and len(config.devices) > 1:
        raise UnsupportedOptionError(f"devices {config.devices}: kifaru image train runs on one device; give devices: 1 (or auto)")


def _model_source(config: ImageTrainConfig) -> _ModelSource:
    from kifaru.images.preprocess import FAMILIES, family_of
    from kifaru.models.checkpoint import read_checkpoint
    from kifaru.models.model_classes import require_media
    from kifaru.models.registry import image_model_entry

    if config.from_scratch:
        entry = image_model_entry(config.model_name) if config.model_name is not None else None
        timm_name = config.architecture or entry.timm_name  # type: ignore[union-attr]
        family = FAMILIES[entry.family] if entry is not None and config.architecture is None else family_of({"model_name": timm_name})
        return _ModelSource(None, timm_name, family, [], {}, config.model_name or timm_name)
    path = Path(config.checkpoint) if config.checkpoint is not None else _official_weights(config)
    checkpoint = read_checkpoint(path, mmap=False)
    require_media(checkpoint.model_class, "image", path)
    hparams = dict(checkpoint.hyper_parameters)
    return _ModelSource(checkpoint, str(hparams["model_name"]), family_of(hparams), list(checkpoint.species), hparams, config.model_name or path.stem)


def _official_weights(config: ImageTrainConfig) -> Path:
    from kifaru.models.registry import image_model_entry
    from kifaru.models.s3 import normalize_region
    from kifaru.models.weights import resolve_weights

    entry = image_model_entry(config.model_name or "")
    cache_dir = Path(config.model_cache_dir) if config.model_cache_dir else None
    return resolve_weights(entry, region=normalize_region(config.weight_download_region), cache_dir=cache_dir)


def _network(config: ImageTrainConfig, source: _ModelSource, species: list[str], kept_head: bool) -> Any:
    from kifaru.images.classifier import ImageNetwork
    from kifaru.models.checkpoint import model_from_checkpoint

    if source.checkpoint is not None:
        network = model_from_checkpoint(source.checkpoint, build_on="cpu")
        if not kept_head:  # a new head for the labels' species (timm's own way for every network)
            network.model.reset_classifier(len(species))
        return network.train()
    network = ImageNetwork(source.timm_name, len(species))
    if config.pretrained:
        import timm

        try:
            network.model = timm.create_model(source.timm_name, pretrained=True, num_classes=len(species))
        except Exception as error:  # no network, no such weights: say what to do
            raise ConfigError(
                f"architecture {source.timm_name}: timm could not fetch its pretrained weights ({type(error).__name__}: {error}); "
                "set pretrained: false to start from random weights"
            ) from None
    return network


def _scheduler(config: ImageTrainConfig, source: _ModelSource) -> dict[str, Any]:
    """zamba's: "default" is the checkpoint's own scheduler, or for a new network cosine
    annealing over early_stopping_patience epochs; null is none."""
    scheduler = config.scheduler_config
    if scheduler == "default":
        if source.checkpoint is None:
            return {"scheduler": "CosineAnnealingLR", "scheduler_params": {"T_max": max(1, config.early_stopping_patience)}}
        return {"scheduler": source.hyper_parameters.get("scheduler"), "scheduler_params": source.hyper_parameters.get("scheduler_params")}
    if scheduler is None:
        return {"scheduler": None, "scheduler_params": None}
    from kifaru.train.module import scheduler_class

    if scheduler.scheduler is not None:
        scheduler_class(scheduler.scheduler)  # ConfigError naming the valid ones, before any photo is read
    return {"scheduler": scheduler.scheduler, "scheduler_params": scheduler.scheduler_params}


def _device(config: ImageTrainConfig) -> str:
    from kifaru.runtime.device import check_device

    requested = {"cpu": "cpu", "gpu": "cuda", None: None}.get(config.accelerator, config.accelerator)
    return check_device(requested, "accelerator")


def _photo_settings(config: ImageTrainConfig, family: str, size: int, device: str, detector: Any, given: Optional[dict] = None) -> Any:
    from kifaru.detection.registry import DETECTORS
    from kifaru.runs.image_tasks import PhotoSettings

    entry = DETECTORS[config.detector]
    detecting = config.crop_images and detector is None and given is None
    where = device if device.startswith("cuda") else "cpu"
    return PhotoSettings(
        crop_images=config.crop_images, detections_threshold=config.detections_threshold, family=family, image_size=size,
        detector=config.detector if config.crop_images and given is None else None,
        detector_weights=entry.prepare(None, where) if detecting else None, device=where,
        given_boxes=given, kept_threshold=min(entry.kept_threshold, config.detections_threshold), as_pixels=True,
    )  # fmt: skip


def _find_lr(trainer: Any, module: Any, train_loader: Any) -> None:
    """Lightning's learning-rate finder (zamba's, when lr is not given), on the training loss."""
    from pytorch_lightning.tuner import Tuner

    from kifaru.train.module import TrainWarning

    before, max_epochs = module.lr, trainer.fit_loop.max_epochs
    trainer.fit_loop.max_epochs = -1  # a small set is gone over several times in its 100 steps
    try:
        steps.run_lightning(Tuner(trainer).lr_find, module, train_dataloaders=train_loader)
    finally:
        trainer.fit_loop.max_epochs = max_epochs
    if module.lr == before:
        warnings.warn(TrainWarning(f"the learning-rate finder found no rate (too few steps before the loss diverged): training at lr {before}"), stacklevel=4)


def _score_best(trainer, module, best_path, val_loader, test_loader, subsets, crops, photos, config, dataset) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    """The best weights' metrics on val and test: per crop (zamba's names), per image and per sequence."""
    from kifaru.train.image_module import crop_probabilities, grouped_metrics

    results: list[dict[str, float]] = [{}, {}]
    with warnings.catch_warnings(), steps.without_lightning_messages("Restoring states from the checkpoint path", "Loaded model weights from the checkpoint"):
        for slot, (split, subset, loader, run) in enumerate((("val", "val", val_loader, trainer.validate), ("test", "test", test_loader, trainer.test))):
            if loader is None:
                continue
            metrics = steps.plain_metrics(steps.run_lightning(run, module, loader, ckpt_path=best_path or None, verbose=False)[0])
            members = subsets[split]
            probabilities = crop_probabilities(module, dataset(split), config.batch_size)
            metrics.update(grouped_metrics(
                probabilities, [crops.photo[i] for i in members], [crops.conf[i] for i in members], photos.targets,
                photos.seq_ids, photos.species, subset, config.aggregation,
            ))  # fmt: skip
            results[slot] = metrics
    return results[0], results[1]


def _debug_sample(photos: LabelledPhotos, crops: Any, per_class: int) -> tuple[LabelledPhotos, Any]:
    """zamba's debug: at most N photos per class per split (the first ones, in path order)."""
    keep: list[int] = []
    for split in ("train", "val", "test"):
        members = photos.indices(split)
        for column in range(photos.targets.shape[1]):
            keep += [i for i in members if photos.targets[i, column] and i not in keep][:per_class]
    kept = sorted(set(keep))
    renumber = {old: new for new, old in enumerate(kept)}
    chosen = [i for i, p in enumerate(crops.photo) if p in renumber]
    crops.pixels, crops.conf = [crops.pixels[i] for i in chosen], [crops.conf[i] for i in chosen]
    crops.photo = [renumber[crops.photo[i]] for i in chosen]
    return photos.keep({photos.filepaths[i] for i in kept}), crops


def _failures_csv(failures: list[Record]) -> str:
    from kifaru.outputs import RunDescription
    from kifaru.outputs.failures_csv import failures_csv

    return failures_csv(failures, RunDescription("image train"))


def _configuration_yaml(config: ImageTrainConfig, species: list[str], lr: float, started: str) -> str:
    return yaml.safe_dump(
        {
            "git_hash": None,
            "model_class": "ImageClassifierModule",
            "species": species,
            "starting_learning_rate": float(lr),
            "train_config": config.model_dump(mode="json"),
            "training_start_time": started,
        }
    )
