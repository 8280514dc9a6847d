"""A checkpoint's network ready to predict: clips of uint8 frames in, one probability per species out.

:func:`load_classifier` picks the runtime: ONNX Runtime for TimeDistributedEfficientNet on the CPU
(kifaru.models.onnx_classifier), PyTorch otherwise. Env ``KIFARU_CLASSIFIER_RUNTIME`` = ``torch``
or ``onnxruntime`` overrides the choice.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from kifaru.models.checkpoint_info import VideoModelCheckpoint

log = logging.getLogger(__name__)


def load_classifier(
    checkpoint: VideoModelCheckpoint, checkpoint_sha256: str, device: str = "cpu", cache_dir: Optional[Path] = None
) -> Any:
    """A classifier (``predict_proba``, ``species``, ``num_frames``, ``device``) for the checkpoint.
    ``cache_dir``: the model cache, where exported networks are kept."""
    runtime = os.environ.get("KIFARU_CLASSIFIER_RUNTIME", "auto")
    if device == "cpu" and runtime != "torch":
        from kifaru.models import onnx_classifier

        if checkpoint.model_class == onnx_classifier.MODEL_CLASS:
            try:
                return onnx_classifier.load_onnx_time_distributed(checkpoint, checkpoint_sha256, cache_dir)
            except Exception as error:  # PyTorch still works (and names a damaged checkpoint clearly)
                if runtime == "onnxruntime":
                    raise
                log.warning("ONNX Runtime cannot run %s (%s); using PyTorch", checkpoint.path, error)
    return VideoClassifier.from_file(checkpoint.path, device)


class VideoClassifier:
    """Runs a video model on ``device`` ("cpu", "cuda", "cuda:1", "mps")."""

    def __init__(self, checkpoint: VideoModelCheckpoint, device: str = "cpu") -> None:
        import torch

        from kifaru.models.checkpoint import input_transform, model_from_checkpoint

        self.species = list(checkpoint.species)
        self.model_class = checkpoint.model_class
        self.device = device
        self._to_input = input_transform(checkpoint.model_class)
        model = model_from_checkpoint(checkpoint)
        if device == "cpu":
            # oneDNN's preferred layout for convolutions on the CPU.
            model = model.to(memory_format=torch.channels_last)
        self.model = model.to(device).eval()

    @classmethod
    def from_file(cls, path: Path, device: str = "cpu") -> "VideoClassifier":
        from kifaru.models.checkpoint import read_checkpoint

        return cls(read_checkpoint(path), device)

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
