"""The LightningModule of image training: zamba's ``ImageClassifierModule`` loss and optimiser
(softmax cross-entropy, optionally weighted by class; AdamW, or another torch.optim class, with
zamba's weight decay 1 / (lr x batches per epoch) or a given one) on the video module's runner (checkpoints, early stopping, metrics gathered over the
whole validation set), and the metrics of the best weights per image and per sequence."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from kifaru.train.metrics import classification_metrics, top_1_labels
from kifaru.train.module import VideoClassificationModule


def _as_is(inputs: torch.Tensor) -> torch.Tensor:
    return inputs  # the dataset gives the network's input itself


class ImageClassificationModule(VideoClassificationModule):
    """``network``: (batch, 3, S, S) -> (batch, species) logits (kifaru.images.classifier.ImageNetwork)."""

    def __init__(
        self,
        network: torch.nn.Module,
        species: Sequence[str],
        hyper_parameters: dict[str, Any],
        num_training_batches: int,
        class_weights: Optional[np.ndarray] = None,
        monitor_for_plateau: str = "val_loss",
        weight_decay: float | str = "zamba",
        optimizer: str = "AdamW",
        optimizer_params: Optional[dict[str, Any]] = None,
    ) -> None:
        super().__init__(network, _as_is, species, hyper_parameters, optimizer, optimizer_params, None, monitor_for_plateau)
        self.num_training_batches = num_training_batches
        self.weight_decay = weight_decay
        weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weights, persistent=False)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # A photo with several species shares its target among them (the softmax sums to 1).
        shares = targets / targets.sum(dim=1, keepdim=True).clamp_min(1)
        return F.cross_entropy(logits.float(), shares, weight=self.class_weights)

    def metrics(self, targets: torch.Tensor, logits: torch.Tensor, subset: str) -> dict[str, float]:
        probabilities = torch.softmax(logits, dim=1).numpy()
        return classification_metrics((targets.numpy() > 0).astype(int), probabilities, self.species, subset, top_1_labels(probabilities))

    def configure_optimizers(self) -> Any:
        import inspect

        from kifaru.train.module import optimizer_class

        takes_decay = "weight_decay" in inspect.signature(optimizer_class(self._optimizer).__init__).parameters
        if "weight_decay" in self._optimizer_params or not takes_decay:
            return super().configure_optimizers()
        decay = self.weight_decay
        if decay == "zamba":
            # zamba's: 1 / (lr * iterations per epoch) (arXiv 2405.13698), at the rate training
            # starts with (after the learning-rate finder, where it ran).
            decay = 1 / (self.lr * self.num_training_batches) if self.num_training_batches else 0.01
        self._optimizer_params["weight_decay"] = float(decay)
        return super().configure_optimizers()


def balanced_class_weights(targets: np.ndarray) -> np.ndarray:
    """scikit-learn's "balanced" weights (zamba's weighted_loss): n / (classes x count), over the
    classes present (an absent class gets 1)."""
    counts = np.asarray(targets).sum(axis=0).astype(float)
    present = counts > 0
    weights = np.ones(len(counts))
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights


def crop_probabilities(module: torch.nn.Module, dataset: Any, batch_size: int) -> np.ndarray:
    """Softmax outputs of ``module`` for every item of ``dataset`` (no augmentation), on the CPU."""
    module = module.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            batch = torch.stack([dataset[i][0] for i in range(start, min(start + batch_size, len(dataset)))])
            out.append(torch.softmax(module(batch.to(module.device)).float(), dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(module.species)))


def grouped_metrics(
    probabilities: np.ndarray,
    crop_photo: Sequence[int],
    crop_conf: Sequence[Optional[float]],
    photo_targets: np.ndarray,
    seq_ids: Sequence[Optional[str]],
    species: Sequence[str],
    subset: str,
    aggregation: str,
) -> dict[str, float]:
    """The metrics of a subset per image (its crops combined: kifaru.images.sequences.photo_scores)
    as ``{subset}_image_*``, and, where the photos have sequences, per sequence (its photos
    combined by ``aggregation``, the sequence's labels those of its photos) as ``{subset}_sequence_*``."""
    from kifaru.images.sequences import aggregate, photo_scores

    photos = sorted(set(crop_photo))
    by_photo = {p: [i for i, q in enumerate(crop_photo) if q == p] for p in photos}
    scores = np.array([photo_scores(probabilities[by_photo[p]], species) for p in photos])
    weights = [max(1.0 if crop_conf[i] is None else float(crop_conf[i]) for i in by_photo[p]) for p in photos]
    targets = (np.asarray(photo_targets)[photos] > 0).astype(int)
    metrics = classification_metrics(targets, scores, species, f"{subset}_image", top_1_labels(scores))
    sequences: dict[str, list[int]] = {}
    for row, photo in enumerate(photos):
        if seq_ids[photo] is not None:
            sequences.setdefault(str(seq_ids[photo]), []).append(row)
    if sequences:
        members = list(sequences.values())
        seq_scores = np.array([aggregate(scores[m], species, aggregation, [weights[i] for i in m]) for m in members])
        seq_targets = np.array([targets[m].max(axis=0) for m in members])
        metrics.update(classification_metrics(seq_targets, seq_scores, species, f"{subset}_sequence", top_1_labels(seq_scores)))
    return metrics
