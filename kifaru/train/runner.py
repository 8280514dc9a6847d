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
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional


from kifaru.config.run import TrainConfig
from kifaru.config.video import VideoLoaderConfig
from kifaru.exceptions import ConfigError, NoUsableInputError, TrainingInterrupted
from kifaru.files import write_text_atomically
from kifaru.train.data import ClipFailure
from kifaru.train.labels import LabelledClips

log = logging.getLogger(__name__)

TRAIN_CONFIGURATION_YAML = "train_configuration.yaml"
FAILURES_CSV = "failures.csv"
SPLITS_CSV = "splits.csv"
PREDICTIONS_DIR = "predictions"  # predict_dir's outputs, in version_N/
CHECKPOINTS_DIR = "checkpoints"  # Lightning's checkpoints, in version_N/
LAST_CHECKPOINT = "last.ckpt"  # in CHECKPOINTS_DIR: written after every epoch and when training stops
# Set for DDP's worker processes, which run the command again: they must use rank 0's folder.
VERSION_DIR_ENV = "KIFARU_TRAIN_VERSION_DIR"
# The classifier head of each model class: replaced when the species change.
HEAD_PREFIXES = {"TimeDistributedEfficientNet": "classifier.", "SlowFast": "head."}


@dataclass
class TrainReport:
    version_dir: Path
    checkpoint: Optional[Path]  # the best weights, zamba's format (None for a dry run)
    species: list[str]
    clips: LabelledClips
    failures: list[ClipFailure]
    val_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    predictions: Optional[Any] = None  # the PredictReport of predict_dir
    accelerator: str = "cpu"  # "cpu" or "gpu"
    processes: int = 1  # DDP's processes (one per GPU, or cpu_processes)
    # False in DDP's other processes: they run the same command, and only rank 0 reports.
    main_process: bool = True


# -- resolving ----------------------------------------------------------------------------------


@dataclass
class _Model:
    """Where the network comes from: a checkpoint (its description) or a new one."""

    model_class: str
    species: list[str]  # the model's own (a checkpoint's, or the official model's)
    hyper_parameters: dict[str, Any]
    checkpoint_path: Optional[Path]


def _model_source(config: TrainConfig) -> _Model:
    from kifaru.models.checkpoint_info import read_checkpoint_info
    from kifaru.models.official import official_checkpoint, video_model_entry

    if config.from_scratch:
        entry = video_model_entry(config.model_name)
        hparams = {"num_frames": entry.num_frames} if entry.model_class == "TimeDistributedEfficientNet" else {}
        return _Model(entry.model_class, list(entry.species), hparams, None)
    if config.checkpoint is not None:
        path = Path(config.checkpoint)
    else:
        path = official_checkpoint(
            config.model_name,
            region=config.weight_download_region,
            cache_dir=Path(config.model_cache_dir) if config.model_cache_dir else None,
        )
    info = read_checkpoint_info(path)
    return _Model(info.model_class, list(info.species), dict(info.hyper_parameters), path)


def _loader_config(config: TrainConfig, model: _Model, given: Optional[VideoLoaderConfig], device: str) -> VideoLoaderConfig:
    from kifaru.config.video import resolve_cache_dir
    from kifaru.models.official import default_model_name, video_model_entry
    from kifaru.predict import _with_detector_device
    from kifaru.train.data import default_frame_cache_dir

    if given is None:
        recorded = model.hyper_parameters.get("video_loader_config")
        if isinstance(recorded, dict):
            given = VideoLoaderConfig.model_validate(recorded)
        else:
            family = config.model_name if config.from_scratch else default_model_name(model.model_class)
            if family is None:
                raise ConfigError(f"a {model.model_class} has no default video_loader_config; give one")
            given = video_model_entry(family).default_video_loader_config()
    # Training reads every clip once per epoch: the frame cache is always on.
    cache_dir = resolve_cache_dir(given) or default_frame_cache_dir()
    return _with_detector_device(given.model_copy(update={"cache_dir": cache_dir}), device)


def _model_name(config: TrainConfig, model: _Model) -> str:
    """The written checkpoint's name. As zamba: a given checkpoint trains under its model class's
    default name (a european checkpoint gives time_distributed.ckpt), else model_name."""
    from kifaru.models.official import default_model_name

    if config.checkpoint is not None:
        return default_model_name(model.model_class) or config.model_name
    return config.model_name


def _fit_frame_count(model: _Model, loader: VideoLoaderConfig) -> None:
    """A new TimeDistributed network takes the loader's frame count; a checkpoint's must match it."""
    from kifaru.predict import _check_frame_count
    from kifaru.video.selection import wanted_total_frames

    if model.checkpoint_path is None and "num_frames" in model.hyper_parameters:
        total = wanted_total_frames(loader)
        if total is not None:
            model.hyper_parameters["num_frames"] = int(total)
    else:
        _check_frame_count(model, loader)


def _save_dir(config: TrainConfig) -> Path:
    """save_dir, or the current folder as zamba's default."""
    return Path(config.save_dir) if config.save_dir is not None else Path.cwd()


def _version_dir(config: TrainConfig) -> Path:
    """``save_dir/version_N`` (N one more than the largest there), or ``save_dir`` with overwrite."""
    inherited = os.environ.get(VERSION_DIR_ENV)
    if inherited and os.environ.get("LOCAL_RANK", "0") != "0":
        return Path(inherited)
    save_dir = _save_dir(config)
    if config.overwrite:
        return save_dir
    numbers = [int(p.name[8:]) for p in save_dir.glob("version_*") if p.name[8:].isdigit()] if save_dir.is_dir() else []
    return save_dir / f"version_{max(numbers, default=-1) + 1}"


def _create_version_dir(config: TrainConfig, planned: Path) -> tuple[Path, bool]:
    """Create ``planned`` (``_version_dir``'s) and say whether this run created it: with overwrite
    it is save_dir, which may exist; else a new version_N, the next free one if another run
    took ``planned`` meanwhile, so that it never holds anything but this run's outputs."""
    if config.overwrite:
        planned.mkdir(parents=True, exist_ok=True)
        return planned, False
    while True:
        try:
            planned.mkdir(parents=True, exist_ok=False)
            return planned, True
        except FileExistsError:
            planned = _version_dir(config)


def _accelerator(config: TrainConfig) -> tuple[str, int, str]:
    """(accelerator, devices, strategy) for Lightning, from gpus and cpu_processes."""
    from kifaru.device import available_devices, check_device

    if check_device(config.gpus, "gpus") == "cuda":  # where the best device is MPS, training runs on the CPU
        gpus = config.gpus or sum(name.startswith("cuda") for name in available_devices())  # None: all of them
        return "gpu", gpus, "ddp" if gpus > 1 else "auto"
    return "cpu", config.cpu_processes, "ddp" if config.cpu_processes > 1 else "auto"


# -- the network --------------------------------------------------------------------------------


def _network(config: TrainConfig, model: _Model, species: list[str], kept_head: bool) -> Any:
    """The network to train, and the part of it that BackboneFinetuning unfreezes (None: the
    whole network trains from the start)."""
    from kifaru.models.checkpoint import _BUILDERS, model_from_checkpoint, normalize_keys, read_checkpoint

    if model.checkpoint_path is not None and kept_head:
        network = model_from_checkpoint(read_checkpoint(model.checkpoint_path))
    elif model.checkpoint_path is not None:
        checkpoint = read_checkpoint(model.checkpoint_path)
        network = _BUILDERS[model.model_class](checkpoint.hyper_parameters, len(species))
        expected = network.state_dict()
        state = normalize_keys(checkpoint.state_dict, set(expected))
        head = HEAD_PREFIXES.get(model.model_class, "classifier.")
        kept = {k: v for k, v in state.items() if not k.startswith(head) and k in expected}
        missing = sorted(k for k in set(expected) - set(kept) if not k.startswith(head))
        if missing:
            raise ConfigError(f"checkpoint {model.checkpoint_path}: its backbone lacks {len(missing)} tensors (first: {missing[0]})")
        network.load_state_dict(kept, strict=False)  # the head stays newly initialised
    elif model.model_class == "TimeDistributedEfficientNet":
        from kifaru.models.time_distributed import TimeDistributedEfficientNet

        network = TimeDistributedEfficientNet(
            len(species), num_frames=int(model.hyper_parameters.get("num_frames", 16)),
            backbone_name=config.backbone, pretrained=config.backbone_pretrained,
        )  # fmt: skip
    else:
        network = _BUILDERS[model.model_class](model.hyper_parameters, len(species))
    network.train()
    if model.checkpoint_path is None and not (model.model_class == "TimeDistributedEfficientNet" and config.backbone_pretrained):
        # Random features (a new backbone without pretrained weights; kifaru cannot fetch
        # SlowFast's Kinetics weights): frozen, they would teach the head nothing. All of it trains,
        # BatchNorm statistics included (zamba's TimeDistributed keeps them frozen: pretrained ones).
        if model.model_class == "TimeDistributedEfficientNet":
            network.frozen_batchnorm = False
        return network, None
    # As zamba, for both model classes: everything before the head (`base`) is frozen; fine-tuning
    # unfreezes its last layers (`backbone`: EfficientNet's last blocks, SlowFast's last stage and
    # pooling), or all of it with train_full_backbone.
    for parameter in network.base.parameters():
        parameter.requires_grad = False
    return network, network.base if config.train_full_backbone else network.backbone


def _check_scheduler(config: TrainConfig, model: _Model) -> None:
    """An unknown scheduler name fails here, before any clip is read, instead of when Lightning
    builds the optimiser after the frames are cached."""
    from kifaru.train.module import scheduler_class

    if config.scheduler_config is None:
        return
    if config.scheduler_config == "default":
        name = model.hyper_parameters.get("scheduler")
        where = f"checkpoint {model.checkpoint_path}: hyper_parameters.scheduler (scheduler_config 'default' uses it; give a scheduler_config to choose another)"
    else:
        name = config.scheduler_config.scheduler
        where = "scheduler_config.scheduler"
    if name is not None:
        try:
            scheduler_class(str(name))
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None


def _hyper_parameters(config: TrainConfig, model: _Model, species: list[str], loader: VideoLoaderConfig) -> dict[str, Any]:
    """zamba's hparams (lr, scheduler, scheduler_params, species, model_class, num_frames or
    SlowFast's head fields) plus the loader config and, for a new backbone, its name."""
    hparams = {k: v for k, v in model.hyper_parameters.items() if k not in ("video_loader_config",)}
    scheduler = config.scheduler_config
    if scheduler == "default":
        scheduler_name, scheduler_params = hparams.get("scheduler"), hparams.get("scheduler_params")
    elif scheduler is None:
        scheduler_name, scheduler_params = None, None
    else:
        scheduler_name, scheduler_params = scheduler.scheduler, scheduler.scheduler_params
    hparams.update(
        lr=float(config.lr if config.lr is not None else hparams.get("lr", 1e-3)),
        scheduler=scheduler_name,
        scheduler_params=scheduler_params,
        species=list(species),
        model_class=model.model_class,
        video_loader_config=loader.model_dump(mode="json", exclude={"cache_dir", "cleanup_cache"}),
    )
    if config.backbone is not None:
        hparams["backbone_name"] = config.backbone
    return hparams


# -- running ------------------------------------------------------------------------------------


@dataclass
class _Started:
    """What a run has made so far: what train_model cleans up or reports when it stops early."""

    version_dir: Optional[Path] = None  # where its outputs go, once made
    created: bool = False  # version_dir is a version_N that this run made (never save_dir itself)
    since: float = 0.0  # time.time() when version_dir was made: what is older there is not this run's
    trainer: Any = None


def train_model(train_config: TrainConfig, video_loader_config: Optional[VideoLoaderConfig] = None) -> TrainReport:
    """Train as zamba's ``train_model`` does; see the module's description for the steps.

    Stopped by Ctrl-C or SIGTERM, it raises :class:`~kifaru.exceptions.TrainingInterrupted`,
    naming the checkpoint that continues the run (``resume_from``). A run that fails or stops
    before its first checkpoint removes the version_N folder it made: it holds nothing to use."""
    started = _Started()
    try:
        with _without_third_party_noise():
            return _train_model(train_config, video_loader_config, started)
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


def _train_model(train_config: TrainConfig, video_loader_config: Optional[VideoLoaderConfig], started: _Started) -> TrainReport:
    import pytorch_lightning as pl

    from kifaru.predict import _detector_weights, failures_csv
    from kifaru.train import labels as L
    from kifaru.train.data import CachedClips, cache_clips

    config = train_config
    if config.seed is not None:
        pl.seed_everything(config.seed, workers=True, verbose=False)
    if config.predict_dir is not None and not Path(config.predict_dir).is_dir():
        raise ConfigError(f"predict_dir {config.predict_dir}: no such folder (give the folder of clips to predict after training)")
    accelerator, devices, strategy = _accelerator(config)
    model = _model_source(config)
    _check_scheduler(config, model)
    labels = L.read_labels(config.labels, Path(config.data_dir) if config.data_dir is not None else None)
    species, kept_head = L.choose_species(labels, model.species, config.use_default_model_labels)
    device = "cuda" if accelerator == "gpu" else "cpu"
    loader = _loader_config(config, model, video_loader_config, device)
    _fit_frame_count(model, loader)
    if config.holdout_clips_per_video > 1:
        from kifaru.train.evaluate import multi_clip_loader_config

        multi_clip_loader_config(loader, config.holdout_clips_per_video)  # its ConfigError before training, not after
    version_dir = _version_dir(config)
    is_rank_zero = os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"

    # Every clip read once, up front: the unreadable ones are reported and left out.
    filepaths = sorted({row.filepath for row in labels.rows})
    cached = cache_clips(filepaths, loader, config.num_workers, _detector_weights(loader), None, progress=_cache_progress if is_rank_zero else None)
    if not cached.entries:
        raise NoUsableInputError(f"labels {labels.source}: none of its {len(filepaths)} clips could be read (e.g. {cached.failures[0].filepath}: {cached.failures[0].reason})")
    usable = L.LabelsFile([r for r in labels.rows if r.filepath in cached.entries], labels.has_split, labels.has_site, labels.source)
    clips = L.one_output_if_binary(L.split_clips(L.labelled_clips(usable, species), config.split_proportions, labels.has_split))
    species = clips.species
    hparams = _hyper_parameters(config, model, species, loader)
    if hparams.get("scheduler") == "ReduceLROnPlateau" and not clips.subset("val")[0]:
        raise ConfigError("scheduler ReduceLROnPlateau (scheduler_config) steps on a validation metric, but no clip is in the val split; add val clips or choose another scheduler")
    if is_rank_zero and not labels.has_split:
        # zamba writes the splits it made into save_dir itself (a dry run too): scripts read it there.
        save_dir = _save_dir(config)
        save_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomically(save_dir / SPLITS_CSV, L.splits_csv(clips))
    if is_rank_zero and not config.dry_run:
        started.since = time.time()
        version_dir, started.created = _create_version_dir(config, version_dir)
        started.version_dir = version_dir
        os.environ[VERSION_DIR_ENV] = str(version_dir)
        write_text_atomically(version_dir / SPLITS_CSV, L.splits_csv(clips))
        write_text_atomically(version_dir / FAILURES_CSV, failures_csv(cached.failures))
    if cached.failures and is_rank_zero:
        warnings.warn(L.LabelsWarning(f"{len(cached.failures)} labelled clip(s) cannot be read and are left out (see {FAILURES_CSV})"), stacklevel=2)

    network, finetuned = _network(config, model, species, kept_head)
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
        return _data_loader(dataset if augment else _NumberedClips(dataset), config.batch_size, config.num_workers, shuffle=augment)

    train_loader, val_loader, holdout_loader = loader_for("train", augment=True), loader_for("val"), loader_for("holdout")
    if train_loader is None:
        raise ConfigError("no clip is in the train split; check the split column or split_proportions")
    trainer, best = _trainer(config, version_dir, accelerator, devices, strategy, val_loader is not None, finetuned is not None)
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
            _run_lightning(Tuner(trainer).lr_find, module, train_dataloaders=train_loader)
        finally:
            trainer.fit_loop.max_epochs = max_epochs
        if module.lr == before:
            warnings.warn(TrainWarning(f"auto_lr_find found no learning rate (too few steps before the loss diverged): training at lr {before}"), stacklevel=2)
        hparams["lr"] = module.lr
    if is_rank_zero and not config.dry_run:
        resolved = _resolved_config(config, hparams, devices if accelerator == "gpu" else 0, kept_head, labels.has_split, version_dir)
        write_text_atomically(version_dir / TRAIN_CONFIGURATION_YAML, _configuration_yaml(resolved, loader, model.model_class, species, module.lr))
    _run_lightning(trainer.fit, module, train_loader, val_loader, ckpt_path=str(config.resume_from) if config.resume_from else None)
    report = TrainReport(
        version_dir, None, species, clips, cached.failures, epochs=trainer.current_epoch, accelerator=accelerator,
        processes=devices, main_process=trainer.is_global_zero,
    )  # fmt: skip
    if config.dry_run:
        return report
    best_path = best.best_model_path or best.last_model_path
    # Lightning's lines about loading the best checkpoint are left out: scoring it is kifaru's step.
    with warnings.catch_warnings(), _without_lightning_messages("Restoring states from the checkpoint path", "Loaded model weights from the checkpoint"):
        # With DDP, Lightning advises one process for scoring, as its DistributedSampler repeats
        # a few clips; the module counts each clip once (by its index), so all processes score.
        warnings.filterwarnings("ignore", message="Using `DistributedSampler` with the dataloaders")
        if holdout_loader is not None:
            report.test_metrics = _plain(_run_lightning(trainer.test, module, holdout_loader, ckpt_path=best_path, verbose=False)[0])
        if val_loader is not None:
            report.val_metrics = _plain(_run_lightning(trainer.validate, module, val_loader, ckpt_path=best_path, verbose=False)[0])
    if holdout_loader is not None and config.holdout_clips_per_video > 1 and trainer.is_global_zero:
        from kifaru.train.evaluate import evaluate_holdout

        # trainer.test/validate loaded the best weights into the module (and left it on the CPU).
        report.test_metrics.update(evaluate_holdout(
            module, *clips.subset("holdout"), loader, config.holdout_clips_per_video, config.batch_size, config.num_workers,
            device, _detector_weights(loader), _cache_progress,
        ))  # fmt: skip
    if trainer.is_global_zero:
        if report.test_metrics:
            write_text_atomically(version_dir / "test_metrics.json", json.dumps(report.test_metrics, indent=2))
        if report.val_metrics:
            write_text_atomically(version_dir / "val_metrics.json", json.dumps(report.val_metrics, indent=2))
        report.checkpoint = _export_best(best_path, module, version_dir / f"{_model_name(config, model)}.ckpt", hparams, trainer.global_step)
        if config.predict_dir is not None:
            report.predictions = _predict_folder(config, report.checkpoint, loader, version_dir / PREDICTIONS_DIR)
    return report


def _run_lightning(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call`` (trainer.fit, test, validate or the tuner's lr_find) with Lightning's ways of
    stopping turned back into what they were: Lightning answers Ctrl-C with sys.exit(1) (after
    writing last.ckpt) and leaves SIGINT ignored, and answers SIGTERM with SIGTERMException."""
    from kifaru.exceptions import Interrupted

    main_thread = threading.current_thread() is threading.main_thread()
    sigint = signal.getsignal(signal.SIGINT)
    try:
        return call(*args, **kwargs)
    except SystemExit as exit:
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        if isinstance(exit, SIGTERMException):
            raise Interrupted("SIGTERM") from None
        if isinstance(exit.__context__, KeyboardInterrupt):
            raise exit.__context__ from None
        raise
    except RuntimeError as error:
        # When a DataLoader worker fails to start, Lightning's clean-up fails in turn ("Please call
        # `iter(combined_loader)` first."), which would hide the reason: the reason is raised.
        if "iter(combined_loader)" in str(error) and error.__context__ is not None:
            raise error.__context__ from None
        raise
    finally:
        if main_thread and signal.getsignal(signal.SIGINT) is not sigint and sigint is not None:
            signal.signal(signal.SIGINT, sigint)  # a second Ctrl-C stops kifaru's clean-up as usual


class _DropMessages(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


# Lightning's info lines (all from this logger) that say nothing a kifaru user can act on.
_LIGHTNING_MESSAGES = logging.getLogger("pytorch_lightning.utilities.rank_zero")


@contextmanager
def _without_lightning_messages(*prefixes: str) -> Iterator[None]:
    """Lightning's info lines that start with one of ``prefixes`` left out; its others still show."""
    dropped = _DropMessages(prefixes)
    _LIGHTNING_MESSAGES.addFilter(dropped)
    try:
        yield
    finally:
        _LIGHTNING_MESSAGES.removeFilter(dropped)


_NOISE = (
    "💡 Tip: For seamless cloud logging",
    "TPU available:",
    # On Ctrl-C or SIGTERM (kifaru says what was kept and how to continue, TrainingInterrupted):
    "\nDetected KeyboardInterrupt, attempting graceful shutdown",
    "An KeyboardInterrupt was raised with message",
    "An Interrupted was raised with message",
)


@contextmanager
def _without_third_party_noise() -> Iterator[None]:
    """Training without the third-party messages that a user can do nothing about: Lightning's
    advertisement for its cloud logger, its TPU line, its words on an interruption (kifaru's say
    more) and PyTorch's deprecation of LeafSpec, which Lightning's own code triggers whenever it
    combines the data loaders. Named one by one: every other warning and message (kifaru's,
    Lightning's) still shows."""
    with warnings.catch_warnings(), _without_lightning_messages(*_NOISE):
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)
        yield


def _predict_folder(config: TrainConfig, checkpoint: Path, loader: VideoLoaderConfig, save_dir: Path) -> Any:
    """The trained model on ``predict_dir``: kifaru predict's outputs in ``save_dir``."""
    from kifaru.config import PredictConfig
    from kifaru.predict import predict_model

    print(f"predicting the clips in {config.predict_dir} with {checkpoint.name}", flush=True)
    predict_config = PredictConfig(
        data_dir=config.predict_dir, checkpoint=checkpoint, save_dir=save_dir, batch_size=config.batch_size,
        num_workers=config.num_workers, model_cache_dir=config.model_cache_dir,
    )  # fmt: skip
    # The frames the model was trained on, without the training frame cache.
    return predict_model(predict_config, loader.model_copy(update={"cache_dir": None}))


def _cache_progress(filepath: str, failure: Optional[ClipFailure], done: int, total: int) -> None:
    if failure is not None:
        print(f"[frames {done}/{total}] {filepath}: left out ({failure.stage}: {failure.reason})", flush=True)
    elif done == total or done % 50 == 0:
        print(f"[frames {done}/{total}] selected and cached", flush=True)


class _NumberedClips:
    """A dataset's items with their index, (frames, target, index), for validation and holdout:
    with DDP, the module gathers every process's outputs and counts each clip once by it."""

    def __init__(self, clips: Any) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        frames, target = self.clips[index]
        return frames, target, index


def _data_loader(dataset: Any, batch_size: int, num_workers: int, shuffle: bool) -> Any:
    import torch

    from kifaru.processes import spawn_context

    extra: dict[str, Any] = {}
    # A worker reads whole batches: more workers than batches only cost their start (seconds each).
    num_workers = min(num_workers, -(-len(dataset) // batch_size))
    if num_workers > 0:
        extra = {"multiprocessing_context": spawn_context(), "persistent_workers": True}
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, **extra)


def _trainer(
    config: TrainConfig, version_dir: Path, accelerator: str, devices: int, strategy: str, has_val: bool, freezes_backbone: bool
) -> tuple[Any, Any]:
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from kifaru.train.callbacks import BackboneFinetuning, EpochSummary

    stopping = config.early_stopping_config if has_val else None
    monitor = config.checkpointing.monitor or (stopping.monitor if stopping else "val_macro_f1")
    mode = "min" if monitor.endswith("loss") else "max"
    checkpoints = version_dir / CHECKPOINTS_DIR
    best = ModelCheckpoint(dirpath=checkpoints, filename="best-{epoch}", monitor=monitor if has_val else None, mode=mode)
    # last.ckpt after every epoch (and when training is interrupted): what resume_from takes.
    latest = ModelCheckpoint(dirpath=checkpoints, filename=Path(LAST_CHECKPOINT).stem, enable_version_counter=False, save_on_exception=True)
    # A dry run (one batch of each split) writes nothing, as zamba's.
    callbacks: list[Any] = [EpochSummary(config.max_epochs)]
    if not config.dry_run:
        callbacks += [best, latest]
    if config.checkpointing.every_n_epochs and not config.dry_run:
        callbacks.append(
            ModelCheckpoint(dirpath=checkpoints, filename="epoch-{epoch}", every_n_epochs=config.checkpointing.every_n_epochs,
                            save_top_k=config.checkpointing.keep, monitor="epoch", mode="max")
        )  # fmt: skip
    if stopping is not None:
        callbacks.append(EarlyStopping(monitor=stopping.monitor, patience=stopping.patience, mode=stopping.mode, verbose=stopping.verbose))
    if config.backbone_finetune_config is not None and freezes_backbone:
        callbacks.append(BackboneFinetuning(**config.backbone_finetune_config.model_dump()))
    loggers: list[Any] = []
    if config.loggers and not config.dry_run:
        from pytorch_lightning.callbacks import LearningRateMonitor

        # The rate of each parameter group per epoch (lr-Adam, or lr-Adam/pg1, pg2 once the
        # backbone joins): what the scheduler and the backbone fine-tuning did.
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    if "tensorboard" in config.loggers:
        from pytorch_lightning.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=version_dir.parent, name="", version=version_dir.name, default_hp_metric=False))
    if "csv" in config.loggers:
        from pytorch_lightning.loggers import CSVLogger

        loggers.append(CSVLogger(save_dir=version_dir.parent, name="", version=version_dir.name))
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        max_epochs=config.max_epochs if config.max_epochs is not None else (1 if config.dry_run else -1),
        logger=False if config.dry_run else loggers or False,
        enable_checkpointing=not config.dry_run,
        callbacks=callbacks,
        fast_dev_run=config.dry_run,
        accumulate_grad_batches=config.accumulate_grad_batches,
        num_sanity_val_steps=0,
        default_root_dir=version_dir,
        enable_model_summary=False,
        # Lightning's bar (steps and time left in the epoch) on a terminal; in a log file its
        # redraws are noise, and EpochSummary's line per epoch says what matters.
        enable_progress_bar=sys.stderr.isatty(),
        log_every_n_steps=1,
    )
    return trainer, best


def _export_best(best_path: str, module: Any, dest: Path, hparams: dict[str, Any], global_step: int) -> Path:
    """The best weights in zamba's minimal checkpoint form (zamba and kifaru both load it)."""
    import torch

    from kifaru.models.checkpoint import write_checkpoint

    if best_path:
        state = torch.load(best_path, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
    hparams = {**hparams, "lr": float(hparams["lr"])}
    write_checkpoint(dest, module.model, hparams["model_class"], hparams["species"], hparams, global_step)
    return dest


def _plain(metrics: dict[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in metrics.items()}


def _resolved_config(
    config: TrainConfig, hparams: dict[str, Any], gpus: int, kept_head: bool, has_split: bool, version_dir: Path
) -> TrainConfig:
    """The values used, as zamba records them in train_configuration.yaml: the scheduler behind
    "default", the GPUs, the model cache, whether the model's species were kept, the save_dir."""
    from kifaru.config.run import SchedulerConfig
    from kifaru.models.weights import model_cache_dir

    scheduler = SchedulerConfig(scheduler=hparams.get("scheduler"), scheduler_params=hparams.get("scheduler_params"))
    return config.model_copy(
        update={
            "scheduler_config": scheduler,
            "gpus": gpus,
            "model_cache_dir": model_cache_dir(config.model_cache_dir),
            "use_default_model_labels": kept_head,
            "split_proportions": None if has_split else config.split_proportions,
            "save_dir": Path(config.save_dir) if config.save_dir is not None else version_dir.parent,
        }
    )


def _configuration_yaml(config: TrainConfig, loader: VideoLoaderConfig, model_class: str, species: list[str], lr: float) -> str:
    """zamba's train_configuration.yaml: the configs and what training started from."""
    import yaml

    configuration = {
        "git_hash": _git_hash(),
        "model_class": model_class,
        "species": list(species),
        "starting_learning_rate": float(lr),
        "train_config": config.model_dump(mode="json", exclude={"labels"}),
        "training_start_time": datetime.now(timezone.utc).replace(tzinfo=None).isoformat(),
        "video_loader_config": loader.model_dump(mode="json"),
    }
    return yaml.safe_dump(configuration, sort_keys=True)


def _git_hash() -> Optional[str]:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None



__all__ = ["TrainReport", "train_model"]
