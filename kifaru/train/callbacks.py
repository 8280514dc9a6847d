"""Lightning callbacks of a training run: zamba's backbone fine-tuning, and one line per epoch."""

from __future__ import annotations

import time
from typing import Any, Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks.finetuning import (
    BackboneFinetuning as LightningBackboneFinetuning,
)

from kifaru.notices import notify
from kifaru.progress import format_duration


def _constant(rate: float) -> Any:
    def multiplier(epoch: int) -> float:
        return rate

    return multiplier


class BackboneFinetuning(LightningBackboneFinetuning):
    """zamba's: the backbone frozen until ``unfreeze_backbone_at_epoch``, then trained at
    ``backbone_initial_ratio_lr`` times the head's rate, scaled by ``multiplier`` each epoch;
    ``pre_train_bn`` decides whether its BatchNorm layers train while it is frozen."""

    def __init__(self, *args: Any, multiplier: Optional[float] = 1, pre_train_bn: bool = False, **kwargs: Any) -> None:
        if multiplier is not None:
            kwargs["lambda_func"] = _constant(multiplier)
        super().__init__(*args, **kwargs)
        self.pre_train_bn = pre_train_bn

    def freeze_before_training(self, pl_module: pl.LightningModule) -> None:
        self.freeze(pl_module.backbone, train_bn=self.pre_train_bn)


class EpochSummary(pl.Callback):
    """After each validation: epoch, losses, macro F1 and the time left if no early stop."""

    def __init__(self, max_epochs: Optional[int]) -> None:
        self.max_epochs = max_epochs
        self._start = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.monotonic()
        self._first_epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        parts = [f"{name} {float(metrics[name]):.4f}" for name in ("train_loss_epoch", "val_loss", "val_macro_f1") if name in metrics]
        epoch = trainer.current_epoch + 1
        per_epoch = (time.monotonic() - self._start) / max(1, epoch - self._first_epoch)
        total = f"/{self.max_epochs}" if self.max_epochs else ""
        left = ""
        if self.max_epochs:
            left = f", ~{format_duration(per_epoch * (self.max_epochs - epoch))} left at most"
        notify(f"epoch {epoch}{total}: {', '.join(parts)}; {per_epoch:.1f} s/epoch{left}")


