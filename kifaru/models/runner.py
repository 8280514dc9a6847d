"""A checkpoint's network ready to predict: clips of uint8 frames in, one probability per species out.

:func:`load_classifier` picks the runtime by kifaru.runtime.choice's rule, the detector's too:
ONNX Runtime for TimeDistributedEfficientNet on the CPU (kifaru.models.onnx_classifier), PyTorch
otherwise. Env ``KIFARU_CLASSIFIER_RUNTIME`` = ``pytorch`` (or ``torch``) or ``onnxruntime``
overrides the choice. The classifier says which runtime runs it and, after a fallback to PyTorch,
why (``runtime_choice``): a fallback costs half the speed, so the user must hear.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from kifaru.models.checkpoint_info import VideoModelCheckpoint
from kifaru.runtime import choice as runtimes
from kifaru.runtime.memory import release_freed_memory
from kifaru.runtime.choice import CLASSIFIER_RUNTIME_ENV, ONNXRUNTIME, PYTORCH, RuntimeChoice

__all__ = ["ONNXRUNTIME", "PYTORCH", "RuntimeChoice", "VideoClassifier", "choose_runtime", "load_classifier"]

log = logging.getLogger(__name__)


def choose_runtime(
    checkpoint: VideoModelCheckpoint, checkpoint_sha256: str, device: str = "cpu", cache_dir: Optional[Path] = None
) -> RuntimeChoice:
    """The runtime for the checkpoint's classifier, the ONNX export made (and checked) first where
    ONNX Runtime is the choice. With ``KIFARU_CLASSIFIER_RUNTIME=onnxruntime`` a failed export raises."""
    from kifaru.models import onnx_classifier

    return runtimes.choose_runtime(
        runtimes.requested_runtime(CLASSIFIER_RUNTIME_ENV),
        device,
        supported=checkpoint.model_class == onnx_classifier.MODEL_CLASS,
        # PyTorch still works after a failure (and names a damaged checkpoint clearly).
        prepare=lambda: onnx_classifier.ensure_export(checkpoint, checkpoint_sha256, cache_dir),
    )


def load_classifier(
    checkpoint: VideoModelCheckpoint,
    checkpoint_sha256: str,
    device: str = "cpu",
    cache_dir: Optional[Path] = None,
    choice: Optional[RuntimeChoice] = None,
) -> Any:
    """A classifier (``predict_proba``, ``species``, ``num_frames``, ``device``, ``runtime_choice``)
    for the checkpoint. ``cache_dir``: the model cache, where exported networks are kept;
    ``choice``: from :func:`choose_runtime` (made here when None)."""
    choice = choice or choose_runtime(checkpoint, checkpoint_sha256, device, cache_dir)
    if choice.runtime == ONNXRUNTIME:
        from kifaru.models import onnx_classifier

        try:
            classifier = onnx_classifier.load_onnx_time_distributed(checkpoint, checkpoint_sha256, cache_dir)
        except Exception as error:  # a damaged cached export, say
            choice = runtimes.fall_back(runtimes.requested_runtime(CLASSIFIER_RUNTIME_ENV), error)
        else:
            classifier.runtime_choice = choice
            return classifier
    if choice.fallback_reason:
        log.warning("ONNX Runtime cannot run %s (%s); using PyTorch", checkpoint.path, choice.fallback_reason)
    classifier = VideoClassifier.from_file(checkpoint.path, device)
    classifier.runtime_choice = choice
    return classifier


class VideoClassifier:
    """Runs a video model on ``device`` ("cpu", "cuda", "cuda:1", "mps")."""

    def __init__(self, checkpoint: VideoModelCheckpoint, device: str = "cpu") -> None:
        import torch

        from kifaru.models.checkpoint import input_transform, model_from_checkpoint

        self.species = list(checkpoint.species)
        self.model_class = checkpoint.model_class
        self.device = device
        self.runtime_choice = RuntimeChoice(PYTORCH)
        self._to_input = input_transform(checkpoint.model_class)
        # channels-last: oneDNN's preferred layout for convolutions on the CPU.
        model = model_from_checkpoint(checkpoint, torch.channels_last if device == "cpu" else None)
        self.model = model.to(device).eval()
        release_freed_memory()  # what reading and converting the weights used, back to the system

    @classmethod
    def from_file(cls, path: Path, device: str = "cpu") -> "VideoClassifier":
        from kifaru.models.checkpoint import read_checkpoint

        # Read into memory, not mapped: the weights are converted to channels-last as handed over.
        return cls(read_checkpoint(path, mmap=False), device)

    @property
    def num_frames(self) -> int | None:
        """Frames per clip the model takes, when fixed (TimeDistributedEfficientNet)."""
        return getattr(self.model, "num_frames", None)

    def predict_proba(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """(clips, species) float32 probabilities for uint8 clips of equal shape (T, H, W, 3)."""
        import torch

        frames = torch.from_numpy(np.stack(clips))
        with torch.inference_mode():
            inputs = self._to_input(frames)
            inputs = [x.to(self.device) for x in inputs] if isinstance(inputs, list) else inputs.to(self.device)
            logits = self.model(inputs)
            # zamba's models are multi-label: one sigmoid per species.
            return torch.sigmoid(logits).float().cpu().numpy()
