"""The LightningModule that trains a video network: zamba's loss, optimiser and metrics.

It wraps the network (``kifaru.models``: the same classes predict runs, with zamba's parameter
names), so the weights it trains are saved in zamba's checkpoint format unchanged. The loss is
binary cross-entropy on logits (multi-label), the optimiser works on the parameters that are
trainable at the time (the backbone joins when :class:`BackboneFinetuning` unfreezes it), and the
metrics are zamba's (``kifaru.train.metrics``), computed over the whole validation set of every
process.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F

from kifaru.config.base import did_you_mean
from kifaru.exceptions import ConfigError
from kifaru.train.metrics import classification_metrics


class TrainWarning(UserWarning):
    """Something in the training setup was adjusted or ignored (the message says what)."""


def optimizer_class(name: str) -> type:
    """A ``torch.optim`` optimiser by name; ConfigError listing the valid ones."""
    valid = {n for n, v in vars(torch.optim).items() if isinstance(v, type) and issubclass(v, torch.optim.Optimizer) and v is not torch.optim.Optimizer}
    if name not in valid:
        raise ConfigError(f"unknown optimizer '{name}'{did_you_mean(name, valid)}; valid: {', '.join(sorted(valid))}")
    return getattr(torch.optim, name)


def scheduler_class(name: str) -> type:
    """A ``torch.optim.lr_scheduler`` scheduler by name; ConfigError listing the valid ones."""
    schedulers = torch.optim.lr_scheduler
    valid = {
        n for n, v in vars(schedulers).items()
        if isinstance(v, type) and n[0].isupper() and (issubclass(v, schedulers.LRScheduler) or n == "ReduceLROnPlateau")
        and n not in {"LRScheduler", "_LRScheduler"}
    }  # fmt: skip
    if name not in valid:
        raise ConfigError(f"unknown scheduler '{name}'{did_you_mean(name, valid)}; valid: {', '.join(sorted(valid))}")
    return getattr(schedulers, name)


def supported_params(cls: type, params: Optional[dict], what: str) -> dict:
    """``params`` the constructor takes; the others dropped with a warning (zamba drops them
    silently, e.g. ``verbose``, which PyTorch's schedulers no longer take)."""
    import inspect

    if not params:
        return {}
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "optimizer", "params"}
    dropped = sorted(set(params) - accepted)
    if dropped:
        warnings.warn(TrainWarning(f"{what} {cls.__name__} does not take {', '.join(dropped)}: ignored"), stacklevel=3)
    return {key: value for key, value in params.items() if key in accepted}


class VideoClassificationModule(pl.LightningModule):
    """``network``: (batch, T, ...) model input -> (batch, species) logits; ``to_input`` turns a
    batch of uint8 clips (batch, T, H, W, 3) into that input, on the module's device.

    ``backbone``: the part of the network :class:`BackboneFinetuning` freezes and unfreezes
    (zamba's: the EfficientNet's last block and head layers; the rest of it stays frozen).
    """

    def __init__(
        self,
        network: nn.Module,
        to_input: Callable[[torch.Tensor], Any],
        species: Sequence[str],
        hyper_parameters: dict[str, Any],
        optimizer: str = "Adam",
        optimizer_params: Optional[dict] = None,
        backbone: Optional[nn.Module] = None,
        monitor_for_plateau: str = "val_loss",
    ) -> None:
        super().__init__()
        self.model = network
        self._to_input = to_input
        self.species = list(species)
        self.lr = float(hyper_parameters.get("lr", 1e-3))
        self._optimizer = optimizer
        self._optimizer_params = dict(optimizer_params or {})
        self._backbone = [backbone]  # a list: not registered twice as a submodule
        self._monitor_for_plateau = monitor_for_plateau
        self.save_hyperparameters(hyper_parameters)
        self._outputs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"val": [], "test": []}

    @property
    def backbone(self) -> Optional[nn.Module]:
        return self._backbone[0]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        inputs = self._to_input(frames)
        return self.model(inputs)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        frames, targets = batch
        loss = F.binary_cross_entropy_with_logits(self(frames), targets)
        self.log("train_loss", loss.detach(), on_step=True, on_epoch=True, prog_bar=True, batch_size=len(targets))
        return loss

    def _evaluation_step(self, batch: Any, subset: str) -> None:
        frames, targets = batch
        logits = self(frames)
        loss = F.binary_cross_entropy_with_logits(logits, targets)
        # zamba logs the holdout's loss as val_loss too; here each subset has its own name.
        self.log(f"{subset}_loss", loss.detach(), on_epoch=True, prog_bar=subset == "val", sync_dist=True, batch_size=len(targets))
        self._outputs[subset].append((targets.detach(), torch.sigmoid(logits.detach().float())))

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def gathered_outputs(self, subset: str) -> tuple[np.ndarray, np.ndarray]:
        """(targets, probabilities) of the subset from every process, cleared for the next epoch."""
        outputs = self._outputs[subset]
        targets = torch.cat([t for t, _ in outputs]) if outputs else torch.zeros(0, len(self.species), device=self.device)
        probabilities = torch.cat([p for _, p in outputs]) if outputs else torch.zeros_like(targets)
        outputs.clear()
        if self.trainer is not None and self.trainer.world_size > 1:
            targets = self.all_gather(targets).flatten(0, 1)
            probabilities = self.all_gather(probabilities).flatten(0, 1)
        return targets.cpu().numpy(), probabilities.cpu().numpy()

    def _log_metrics(self, subset: str) -> None:
        targets, probabilities = self.gathered_outputs(subset)
        if len(targets) == 0 or self.trainer.sanity_checking:
            return
        # Every process computed the same values from the gathered outputs: no further syncing.
        metrics = classification_metrics(targets, probabilities, self.species, subset)
        self.log(f"{subset}_macro_f1", metrics.pop(f"{subset}_macro_f1"), prog_bar=subset == "val")
        self.log_dict(metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = optimizer_class(self._optimizer)(
            params, lr=self.lr, **supported_params(optimizer_class(self._optimizer), self._optimizer_params, "optimizer")
        )
        name = self.hparams.get("scheduler")
        if name is None:
            return optimizer
        cls = scheduler_class(name)
        scheduler = cls(optimizer, **supported_params(cls, self.hparams.get("scheduler_params"), "scheduler"))
        config = {"scheduler": scheduler, "interval": "epoch"}
        if name == "ReduceLROnPlateau":
            config["monitor"] = self._monitor_for_plateau
        return {"optimizer": optimizer, "lr_scheduler": config}
