"""``train_model``: a labels file in, a trained model in zamba's checkpoint format out.

The steps, in order: read the labels and choose the species (keep the model's head for a subset
of its species, else a new one); load every clip once into the frame cache, leaving out (and
reporting) the ones that cannot be read; split; build the network; train with Lightning
(zamba's callbacks: best checkpoint, early stopping, backbone fine-tuning; DDP over several GPUs
or CPU processes); then score the best weights on the holdout and validation sets and write the
outputs in ``save_dir/version_N/`` as zamba does (plus kifaru's: failures.csv, the Lightning
checkpoints to resume from, metrics.csv with the csv logger).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from kifaru.config.run import TrainConfig
from kifaru.config.video import VideoLoaderConfig
from kifaru.exceptions import ConfigError, NoUsableInputError, TrainingInterrupted
from kifaru.files import write_text_atomically
from kifaru.notices import notify
from kifaru.runs.records import Record
from kifaru.train import lightning_steps as steps
from kifaru.train.labels import LabelledClips
from kifaru.train.model_setup import (
    accelerator_of,
    build_network,
    check_scheduler,
    fit_frame_count,
    hyper_parameters_of,
    model_name,
    model_source,
    train_loader_config,
)
from kifaru.train.version_dir import (  # noqa: F401 (kifaru.train.runner's names)
    CHECKPOINTS_DIR,
    FAILURES_CSV,
    LAST_CHECKPOINT,
    PREDICTIONS_DIR,
    SPLITS_CSV,
    TRAIN_CONFIGURATION_YAML,
    VERSION_DIR_ENV,
    configuration_yaml,
    create_version_dir,
    resolved_config,
    save_dir_of,
    version_dir_of,
)


@dataclass
class TrainReport:
    version_dir: Path
    checkpoint: Optional[Path]  # the best weights, zamba's format (None for a dry run)
    species: list[str]
    clips: LabelledClips
    failures: list[Record]
    val_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    predictions: Optional[Any] = None  # the PredictReport of predict_dir
    accelerator: str = "cpu"  # "cpu" or "gpu"
    processes: int = 1  # DDP's processes (one per GPU, or cpu_processes)
    # False in DDP's other processes: they run the same command, and only rank 0 reports.
    main_process: bool = True


@dataclass
class _Started:
    """What a run has made so far: what train_model cleans up or reports when it stops early."""

    version_dir: Optional[Path] = None  # where its outputs go, once made
    created: bool = False  # version_dir is a version_N that this run made (never save_dir itself)
    since: float = 0.0  # time.time() when version_dir was made: what is older there is not this run's
    trainer: Any = None

def train_model(
    train_config: TrainConfig,
    video_loader_config: Optional[VideoLoaderConfig] = None,
    *,
    video_loader_overrides: Optional[dict[str, Any]] = None,
    overrides_name: str = "video_loader_overrides",
) -> TrainReport:
    """Train as zamba's ``train_model`` does; see the module's description for the steps.

    The loader config is resolved as predict's: ``video_loader_config``, else the checkpoint's own
    or the model's official one, with ``video_loader_overrides`` (the CLI's ``--set``) on top.

    Stopped by Ctrl-C or SIGTERM, it raises :class:`~kifaru.exceptions.TrainingInterrupted`,
    naming the checkpoint that continues the run (``resume_from``). A run that fails or stops
    before its first checkpoint removes the version_N folder it made: it holds nothing to use."""
    started = _Started()
    try:
        with steps.without_third_party_noise():
            return _train_model(train_config, video_loader_config, started, video_loader_overrides, overrides_name)
    except BaseException as error:
        version_dir = started.version_dir
        written = [] if version_dir is None else [p for p in (version_dir / CHECKPOINTS_DIR).glob("*.ckpt") if p.stat().st_mtime >= started.since]
        if version_dir is not None and started.created and not written:
            shutil.rmtree(version_dir, ignore_errors=True)
            version_dir = None
        if isinstance(error, KeyboardInterrupt) and not isinstance(error, TrainingInterrupted):
            last = next((p for p in written if p.name == LAST_CHECKPOINT), None)
            epochs = int(started.trainer.current_epoch) if started.trainer is not None else 0
            raise TrainingInterrupted(getattr(error, "signal_name", "SIGINT"), version_dir, last, epochs) from None
        raise

def _train_model(
    train_config: TrainConfig,
    video_loader_config: Optional[VideoLoaderConfig],
    started: _Started,
    overrides: Optional[dict[str, Any]] = None,
    overrides_name: str = "video_loader_overrides",
) -> TrainReport:
    import pytorch_lightning as pl

    from kifaru.outputs import RunDescription
    from kifaru.outputs.failures_csv import failures_csv
    from kifaru.runs.resolve import resolve_detector
    from kifaru.train import labels as L
    from kifaru.train.data import CachedClips, cache_clips

    config = train_config
    if config.seed is not None:
        pl.seed_everything(config.seed, workers=True, verbose=False)
    if config.predict_dir is not None and not Path(config.predict_dir).is_dir():
        raise ConfigError(f"predict_dir {config.predict_dir}: no such folder (give the folder of clips to predict after training)")
    accelerator, devices, strategy = accelerator_of(config)
    model = model_source(config)
    check_scheduler(config, model)
    labels = L.read_labels(config.labels, Path(config.data_dir) if config.data_dir is not None else None)
    species, kept_head = L.choose_species(labels, model.species, config.use_default_model_labels)
    device = "cuda" if accelerator == "gpu" else "cpu"
    loader = train_loader_config(config, model, video_loader_config, device, overrides, overrides_name)
    fit_frame_count(model, loader)
    if config.holdout_clips_per_video > 1:
        from kifaru.train.evaluate import multi_clip_loader_config

        multi_clip_loader_config(loader, config.holdout_clips_per_video)  # its ConfigError before training, not after
    version_dir = version_dir_of(config)
    is_rank_zero = os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"

    # Every clip read once, up front: the unreadable ones are reported and left out.
    filepaths = sorted({row.filepath for row in labels.rows})
    detector = resolve_detector(loader, workers=config.num_workers)
    cached = cache_clips(filepaths, loader, config.num_workers, detector, progress=_cache_progress if is_rank_zero else None)
    if not cached.entries:
        raise NoUsableInputError(f"labels {labels.source}: none of its {len(filepaths)} clips could be read (e.g. {cached.failures[0].item}: {cached.failures[0].reason})")
    usable = L.LabelsFile([r for r in labels.rows if r.filepath in cached.entries], labels.has_split, labels.has_site, labels.source)
    clips = L.one_output_if_binary(L.split_clips(L.labelled_clips(usable, species), config.split_proportions, labels.has_split))
    species = clips.species
    hparams = hyper_parameters_of(config, model, species, loader)
    if hparams.get("scheduler") == "ReduceLROnPlateau" and not clips.subset("val")[0]:
        raise ConfigError("scheduler ReduceLROnPlateau (scheduler_config) steps on a validation metric, but no clip is in the val split; add val clips or choose another scheduler")
    if is_rank_zero and not labels.has_split:
        # zamba writes the splits it made into save_dir itself (a dry run too): scripts read it there.
        save_dir = save_dir_of(config)
        save_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomically(save_dir / SPLITS_CSV, L.splits_csv(clips))
    if is_rank_zero and not config.dry_run:
        started.since = time.time()
        version_dir, started.created = create_version_dir(config, version_dir)
        started.version_dir = version_dir
        os.environ[VERSION_DIR_ENV] = str(version_dir)
        write_text_atomically(version_dir / SPLITS_CSV, L.splits_csv(clips))
        write_text_atomically(version_dir / FAILURES_CSV, failures_csv(cached.failures, RunDescription("train")))
    if cached.failures and is_rank_zero:
        warnings.warn(L.LabelsWarning(f"{len(cached.failures)} labelled clip(s) cannot be read and are left out (see {FAILURES_CSV})"), stacklevel=2)

    network, finetuned = build_network(config, model, species, kept_head)
    from kifaru.models.checkpoint import input_transform
    from kifaru.train.augment import clip_augmenter
    from kifaru.train.module import VideoClassificationModule

    module = VideoClassificationModule(
        network, input_transform(model.model_class), species, hparams, config.optimizer, config.optimizer_params, finetuned,
        monitor_for_plateau=config.early_stopping_config.monitor if config.early_stopping_config else "val_loss",
    )  # fmt: skip

    def loader_for(split: str, augment: bool = False) -> Any:
        files, targets = clips.subset(split)
        if not files:
            return None
        dataset = CachedClips([cached.entries[f] for f in files], targets, clip_augmenter(config.augmentations) if augment else None)
        return steps.data_loader(dataset if augment else steps.NumberedClips(dataset), config.batch_size, config.num_workers, shuffle=augment)

    train_loader, val_loader, holdout_loader = loader_for("train", augment=True), loader_for("val"), loader_for("holdout")
    if train_loader is None:
        raise ConfigError("no clip is in the train split; check the split column or split_proportions")
    trainer, best = steps.build_trainer(config, version_dir, accelerator, devices, strategy, val_loader is not None, finetuned is not None)
    started.trainer = trainer
    if config.auto_lr_find and not config.dry_run:
        from pytorch_lightning.tuner import Tuner

        from kifaru.train.module import TrainWarning

        # Lightning's defaults, as zamba's (100 steps from 1e-8 to 1): a small set is gone over
        # several times. It sets module.lr (and hparams' lr) to its suggestion, if it has one.
        # It reads only the training loss: no validation loader, no validation epochs.
        # Those steps may need more epochs than training has (a small set, a small max_epochs), and
        # Lightning would end the search at max_epochs, too early for a suggestion.
        before, max_epochs = module.lr, trainer.fit_loop.max_epochs
        trainer.fit_loop.max_epochs = -1
        try:
            steps.run_lightning(Tuner(trainer).lr_find, module, train_dataloaders=train_loader)
        finally:
            trainer.fit_loop.max_epochs = max_epochs
        if module.lr == before:
            warnings.warn(TrainWarning(f"auto_lr_find found no learning rate (too few steps before the loss diverged): training at lr {before}"), stacklevel=2)
        hparams["lr"] = module.lr
    if is_rank_zero and not config.dry_run:
        resolved = resolved_config(config, hparams, devices if accelerator == "gpu" else 0, kept_head, labels.has_split, version_dir)
        write_text_atomically(version_dir / TRAIN_CONFIGURATION_YAML, configuration_yaml(resolved, loader, model.model_class, species, module.lr))
    steps.run_lightning(trainer.fit, module, train_loader, val_loader, ckpt_path=str(config.resume_from) if config.resume_from else None)
    report = TrainReport(
        version_dir, None, species, clips, cached.failures, epochs=trainer.current_epoch, accelerator=accelerator,
        processes=devices, main_process=trainer.is_global_zero,
    )  # fmt: skip
    if config.dry_run:
        return report
    best_path = best.best_model_path or best.last_model_path
    # Lightning's lines about loading the best checkpoint are left out: scoring it is kifaru's step.
    with warnings.catch_warnings(), steps.without_lightning_messages("Restoring states from the checkpoint path", "Loaded model weights from the checkpoint"):
        # With DDP, Lightning advises one process for scoring, as its DistributedSampler repeats
        # a few clips; the module counts each clip once (by its index), so all processes score.
        warnings.filterwarnings("ignore", message="Using `DistributedSampler` with the dataloaders")
        if holdout_loader is not None:
            report.test_metrics = steps.plain_metrics(steps.run_lightning(trainer.test, module, holdout_loader, ckpt_path=best_path, verbose=False)[0])
        if val_loader is not None:
            report.val_metrics = steps.plain_metrics(steps.run_lightning(trainer.validate, module, val_loader, ckpt_path=best_path, verbose=False)[0])
    if holdout_loader is not None and config.holdout_clips_per_video > 1 and trainer.is_global_zero:
        from kifaru.train.evaluate import evaluate_holdout

        # trainer.test/validate loaded the best weights into the module (and left it on the CPU).
        report.test_metrics.update(evaluate_holdout(
            module, *clips.subset("holdout"), loader, config.holdout_clips_per_video, config.batch_size, config.num_workers,
            device, detector, _cache_progress,
        ))  # fmt: skip
    if trainer.is_global_zero:
        if report.test_metrics:
            write_text_atomically(version_dir / "test_metrics.json", json.dumps(report.test_metrics, indent=2))
        if report.val_metrics:
            write_text_atomically(version_dir / "val_metrics.json", json.dumps(report.val_metrics, indent=2))
        report.checkpoint = steps.export_best(best_path, module, version_dir / f"{model_name(config, model)}.ckpt", hparams, trainer.global_step)
        if config.predict_dir is not None:
            report.predictions = _predict_folder(config, report.checkpoint, loader, version_dir / PREDICTIONS_DIR)
    return report

def _predict_folder(config: TrainConfig, checkpoint: Path, loader: VideoLoaderConfig, save_dir: Path) -> Any:
    """The trained model on ``predict_dir``: kifaru predict's outputs in ``save_dir``."""
    from kifaru.config import PredictConfig
    from kifaru.runs.predict import predict_model

    notify(f"predicting the clips in {config.predict_dir} with {checkpoint.name}")
    predict_config = PredictConfig(
        data_dir=config.predict_dir, checkpoint=checkpoint, save_dir=save_dir, batch_size=config.batch_size,
        num_workers=config.num_workers, model_cache_dir=config.model_cache_dir,
    )  # fmt: skip
    # The frames the model was trained on, without the training frame cache.
    return predict_model(predict_config, loader.model_copy(update={"cache_dir": None}))

def _cache_progress(record: Record, done: int, total: int) -> None:
    if record.failed:
        notify(f"[frames {done}/{total}] {record.item}: left out ({record.stage}: {record.reason})")
    elif done == total or done % 50 == 0:
        notify(f"[frames {done}/{total}] selected and cached")


__all__ = ["TrainReport", "train_model"]
