"""A checkpoint's network ready to predict: clips of uint8 frames in, one probability per species out."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from kifaru.models.checkpoint import VideoModelCheckpoint, input_transform, model_from_checkpoint


class VideoClassifier:
    """Runs a video model on ``device`` ("cpu", "cuda", "cuda:1", "mps")."""

    def __init__(self, checkpoint: VideoModelCheckpoint, device: str = "cpu") -> None:
        import torch

        self.species = list(checkpoint.species)
        self.model_class = checkpoint.model_class
        self.device = device
        self._to_input = input_transform(checkpoint.model_class)
        model = model_from_checkpoint(checkpoint)
        if device == "cpu":
            # oneDNN's convolutions are about twice as fast with channels-last tensors on the CPU.
            model = model.to(memory_format=torch.channels_last)
        self.model = model.to(device).eval()

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
