"""A tiny video model registered like the real ones, so prediction runs are fast in tests.

Its logits are a known function of each frame's mean brightness, so a test can work out what the
model must say about a clip from the frames kifaru loads for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from kifaru.models.checkpoint import write_checkpoint
from kifaru.models.model_classes import ModelClass, register_model_class

MODEL_CLASS = "TinyVideoNet"
SPECIES = ["blank", "chimpanzee_bonobo", "elephant"]
NUM_FRAMES = 4
# Frames as the tests' loader configs give them: 4 evenly spaced, resized to 32x48, no detector.
LOADER_CONFIG = {
    "evenly_sample_total_frames": True,
    "total_frames": NUM_FRAMES,
    "ensure_total_frames": True,
    "model_input_height": 32,
    "model_input_width": 48,
}


class TinyVideoNet(nn.Module):
    """(batch, T, H, W, 3) floats in 0..1 -> logits: a linear map of the frames' mean brightness."""

    def __init__(self, num_classes: int, num_frames: int = NUM_FRAMES) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.linear = nn.Linear(num_frames, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.mean(dim=(2, 3, 4)))


def _build(hparams: dict, num_classes: int) -> nn.Module:
    return TinyVideoNet(num_classes, int(hparams.get("num_frames", NUM_FRAMES)))


def _to_input(frames: torch.Tensor) -> torch.Tensor:
    return frames.float() / 255.0


register_model_class(ModelClass(MODEL_CLASS, _build, _to_input, head_prefix="linear."))


def tiny_model(seed: int = 0, species: Sequence[str] = SPECIES) -> TinyVideoNet:
    torch.manual_seed(seed)
    model = TinyVideoNet(len(species))
    with torch.no_grad():
        model.linear.weight.mul_(8.0)  # spread the probabilities out so that a wrong clip shows
    return model.eval()


def write_tiny_checkpoint(
    path: Path, seed: int = 0, species: Sequence[str] = SPECIES, loader_config: Optional[dict] = None
) -> Path:
    model = tiny_model(seed, species)
    hparams = {"num_frames": NUM_FRAMES, "video_loader_config": loader_config or LOADER_CONFIG}
    write_checkpoint(path, model, MODEL_CLASS, list(species), hparams)
    return path


def expected_probabilities(model: TinyVideoNet, frames: np.ndarray) -> np.ndarray:
    """What the model must say about one clip's loaded frames (T, H, W, 3) uint8."""
    with torch.no_grad():
        return torch.sigmoid(model(_to_input(torch.from_numpy(frames[None])))).numpy()[0]
