"""The LightningModule that trains a video network: zamba's loss, optimiser and metrics.

It wraps the network (``kifaru.models``: the same classes predict runs, with zamba's parameter
names), so the weights it trains are saved in zamba's checkpoint format unchanged. The loss is
binary cross-entropy on logits (multi-label), the optimiser works on the parameters that are
trainable at the time (the backbone joins when :class:`BackboneFinetuning` unfreezes it), and the
metrics are zamba's (``kifaru.train.metrics``), computed over the whole validation set (with DDP,
gathered from every process, each clip once; validation and holdout batches carry the clips' indices).
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
        # Per evaluated batch: (the clips' indices in the dataset, targets, logits).
        self._outputs: dict[str, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {"val": [], "test": []}
        self._synced_by_ddp: set[int] = set()  # ids of the parameters DDP averages the gradients of

    @property
    def backbone(self) -> Optional[nn.Module]:
        return self._backbone[0]

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """zamba's video loss: multi-label, each species on its own."""
        return F.binary_cross_entropy_with_logits(logits, targets)

    def metrics(self, targets: torch.Tensor, logits: torch.Tensor, subset: str) -> dict[str, float]:
        return classification_metrics(targets.numpy(), torch.sigmoid(logits).numpy(), self.species, subset)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        inputs = self._to_input(frames)
        return self.model(inputs)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        frames, targets = batch
        loss = self.loss(self(frames), targets)
        # sync_dist: with DDP, the epoch's train_loss is the mean over every process's batches.
        self.log("train_loss", loss.detach(), on_step=True, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=len(targets))
        return loss

    def _evaluation_step(self, batch: Any, subset: str) -> None:
        # The loss and metrics are computed over the whole subset when the epoch ends (_log_metrics).
        frames, targets, indices = batch  # indices: the clips' places in the dataset
        logits = self(frames)
        self._outputs[subset].append((indices.detach(), targets.detach(), logits.detach().float()))

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def gathered_outputs(self, subset: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(targets, logits) of the subset's clips from every process, each clip once, in the
        dataset's order (on the CPU); cleared for the next epoch."""
        outputs = self._outputs[subset]
        if outputs:
            indices, targets, logits = (torch.cat(parts) for parts in zip(*outputs))
        else:
            indices = torch.zeros(0, dtype=torch.long, device=self.device)
            targets = logits = torch.zeros(0, len(self.species), device=self.device)
        outputs.clear()
        if self.trainer is not None and self.trainer.world_size > 1:
            indices, targets, logits = (_gather_from_every_process(t) for t in (indices, targets, logits))
        # DDP's DistributedSampler gives every process as many clips by repeating a few: they
        # would count twice in the metrics. np.unique keeps each index's first row.
        _, first = np.unique(indices.cpu().numpy(), return_index=True)
        keep = torch.from_numpy(first)
        return targets.cpu()[keep], logits.cpu()[keep]

    def _log_metrics(self, subset: str) -> None:
        targets, logits = self.gathered_outputs(subset)
        if len(targets) == 0 or self.trainer.sanity_checking:
            return
        metrics = self.metrics(targets, logits, subset)
        # zamba logs the holdout's loss as val_loss too; here each subset has its own name.
        metrics[f"{subset}_loss"] = self.loss(logits, targets).item()
        # With DDP every process has computed the same values from the gathered outputs; sync_dist
        # (their mean) costs little and keeps them bit-identical for the callbacks' decisions.
        bar = {f"{subset}_loss", f"{subset}_macro_f1"} if subset == "val" else set()
        self.log_dict({k: v for k, v in metrics.items() if k in bar}, prog_bar=True, sync_dist=True)
        self.log_dict({k: v for k, v in metrics.items() if k not in bar}, sync_dist=True)

    def on_fit_start(self) -> None:
        # DDP averages the gradients of the parameters trainable when it wrapped the network (just
        # before this hook); the ones BackboneFinetuning unfreezes later it leaves to each process
        # (Lightning issue 20340): on_before_optimizer_step averages those.
        self._synced_by_ddp = {id(p) for p in self.parameters() if p.requires_grad}

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        if self.trainer.world_size <= 1:
            return
        late = [p for p in self.parameters() if p.requires_grad and p.grad is not None and id(p) not in self._synced_by_ddp]
        if late:
            import torch.distributed as dist

            flat = torch.cat([p.grad.reshape(-1) for p in late])  # one collective, not one per tensor
            dist.all_reduce(flat)
            flat /= self.trainer.world_size
            offset = 0
            for p in late:
                p.grad.copy_(flat[offset : offset + p.numel()].view_as(p.grad))
                offset += p.numel()

    def on_train_end(self) -> None:
        if self.trainer.world_size <= 1:
            return
        # DDP keeps every process's weights equal; if they differ, gradients were not shared and
        # the checkpoint (rank 0's weights) learnt from part of the training clips only.
        sums = torch.stack([p.detach().double().sum() for p in self.parameters()])
        if not all(torch.equal(sums, other) for other in _gather_from_every_process(sums[None]).unbind(0)):
            warnings.warn(TrainWarning("the DDP processes ended training with different weights: please report this as a kifaru bug"), stacklevel=2)

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
        params = supported_params(cls, self.hparams.get("scheduler_params"), "scheduler")
        if name == "ReduceLROnPlateau":
            # Its default mode, min, would cut the rate each time the macro F1 improves.
            params.setdefault("mode", "min" if self._monitor_for_plateau.endswith("loss") else "max")
        scheduler = cls(optimizer, **params)
        config = {"scheduler": scheduler, "interval": "epoch"}
        if name == "ReduceLROnPlateau":
            config["monitor"] = self._monitor_for_plateau
        return {"optimizer": optimizer, "lr_scheduler": config}


def _gather_from_every_process(tensor: torch.Tensor) -> torch.Tensor:
    """The rows of ``tensor`` from every DDP process, rank by rank; the processes may have
    different numbers of rows (torch's all_gather wants equal shapes: padded, then cut)."""
    import torch.distributed as dist

    world_size = dist.get_world_size()
    count = torch.tensor([tensor.shape[0]], device=tensor.device)
    counts = [torch.zeros_like(count) for _ in range(world_size)]
    dist.all_gather(counts, count)
    longest = int(max(c.item() for c in counts))
    padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    padded[: tensor.shape[0]] = tensor
    gathered = [torch.zeros_like(padded) for _ in range(world_size)]
    dist.all_gather(gathered, padded.contiguous())
    return torch.cat([rows[: int(c.item())] for rows, c in zip(gathered, counts)])
