"""The Lightning side of a training run: the Trainer with zamba's callbacks and kifaru's
checkpoints and loggers, the data loaders, Lightning's ways of stopping turned back into
kifaru's (Ctrl-C, SIGTERM), its messages that say nothing a user can act on left out, and the
best weights exported in zamba's checkpoint format."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from kifaru.config.run import TrainConfig
from kifaru.registry import Registry
from kifaru.train.version_dir import CHECKPOINTS_DIR, LAST_CHECKPOINT


def run_lightning(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
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
def without_lightning_messages(*prefixes: str) -> Iterator[None]:
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
def without_third_party_noise() -> Iterator[None]:
    """Training without the third-party messages that a user can do nothing about: Lightning's
    advertisement for its cloud logger, its TPU line, its words on an interruption (kifaru's say
    more) and PyTorch's deprecation of LeafSpec, which Lightning's own code triggers whenever it
    combines the data loaders. Named one by one: every other warning and message (kifaru's,
    Lightning's) still shows."""
    with warnings.catch_warnings(), without_lightning_messages(*_NOISE):
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)
        yield

class NumberedClips:
    """A dataset's items with their index, (frames, target, index), for validation and holdout:
    with DDP, the module gathers every process's outputs and counts each clip once by it."""

    def __init__(self, clips: Any) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        frames, target = self.clips[index]
        return frames, target, index

def data_loader(dataset: Any, batch_size: int, num_workers: int, shuffle: bool) -> Any:
    import torch

    from kifaru.runtime.processes import spawn_context

    extra: dict[str, Any] = {}
    # A worker reads whole batches: more workers than batches only cost their start (seconds each).
    num_workers = min(num_workers, -(-len(dataset) // batch_size))
    if num_workers > 0:
        extra = {"multiprocessing_context": spawn_context(), "persistent_workers": True}
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, **extra)

def _tensorboard_logger(version_dir: Path) -> Any:
    from pytorch_lightning.loggers import TensorBoardLogger

    return TensorBoardLogger(save_dir=version_dir.parent, name="", version=version_dir.name, default_hp_metric=False)


def _csv_logger(version_dir: Path) -> Any:
    from pytorch_lightning.loggers import CSVLogger

    return CSVLogger(save_dir=version_dir.parent, name="", version=version_dir.name)


# train_config.loggers' names, each with the logger it makes in version_N/ (the one list of them:
# the config checks names against it).
LOGGERS: Registry[Callable[[Path], Any]] = Registry("logger")
LOGGERS.register("tensorboard", _tensorboard_logger)
LOGGERS.register("csv", _csv_logger)


def build_trainer(
    config: TrainConfig, version_dir: Path, accelerator: str, devices: int, strategy: str, has_val: bool, freezes_backbone: bool,
    checkpoints: Optional[Path] = None,
) -> tuple[Any, Any]:
    """The Trainer and its best-checkpoint callback. ``config``: a TrainConfig, or any object with
    its training fields (image training's settings); ``checkpoints``: where they go (default
    ``version_dir/checkpoints``)."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from kifaru.train.callbacks import BackboneFinetuning, EpochSummary

    stopping = config.early_stopping_config if has_val else None
    monitor = config.checkpointing.monitor or (stopping.monitor if stopping else "val_macro_f1")
    mode = "min" if monitor.endswith("loss") else "max"
    checkpoints = checkpoints or version_dir / CHECKPOINTS_DIR
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
    # In the order of LOGGERS, whatever the config's order (as before: TensorBoard first).
    loggers += [make(version_dir) for name, make in LOGGERS.items() if name in config.loggers]
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

def export_best(best_path: str, module: Any, dest: Path, hparams: dict[str, Any], global_step: int) -> Path:
    """The best weights in zamba's minimal checkpoint form (zamba and kifaru both load it)."""
    import torch

    from kifaru.models.checkpoint import write_checkpoint

    if best_path:
        state = torch.load(best_path, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
    hparams = {**hparams, "lr": float(hparams["lr"])}
    write_checkpoint(dest, module.model, hparams["model_class"], hparams["species"], hparams, global_step)
    return dest

def plain_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in metrics.items()}
