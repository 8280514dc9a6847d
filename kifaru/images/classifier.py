"""zamba's image classifier (``ImageClassifierModule``): one timm network, softmax over the species,
fed a crop or a whole photo the way its family preprocesses it (kifaru.images.preprocess).

A checkpoint holds ``model.<timm network's tensors>`` (SpeciesNet's converted file may leave out
the ``model.`` prefix) and ``hyper_parameters`` with ``model_name`` (the timm network),
``species``, ``image_size`` and ``model_family``; kifaru reads zamba's files and writes the same
form, so each side loads the other's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from kifaru.images.preprocess import ImageFamily, family_of, input_size
from kifaru.models.checkpoint_info import VideoModelCheckpoint

# Crops per network call: larger batches stop paying off on the CPU and hold more memory.
CROPS_PER_CALL = 8


def _torch_module() -> Any:
    import torch

    class ImageNetwork(torch.nn.Module):
        """The timm network under ``model``, as zamba's LightningModule holds it."""

        def __init__(self, model_name: str, num_classes: int) -> None:
            super().__init__()
            import timm

            self.model = timm.create_model(model_name, pretrained=False, num_classes=num_classes)

        def forward(self, inputs: Any) -> Any:
            return self.model(inputs)

    return ImageNetwork


def __getattr__(name: str) -> Any:
    # ``ImageNetwork`` is defined on first use: importing this module does not import PyTorch.
    if name == "ImageNetwork":
        network = _torch_module()
        globals()["ImageNetwork"] = network
        return network
    raise AttributeError(name)


class ImageClassifier:
    """An image checkpoint's network on ``device``: preprocessed inputs in, probabilities out."""

    def __init__(self, checkpoint: VideoModelCheckpoint, device: str = "cpu", image_size: Optional[int] = None) -> None:
        import torch

        from kifaru.models.checkpoint import model_from_checkpoint
        from kifaru.runtime.memory import release_freed_memory

        self.species = list(checkpoint.species)
        self.device = device
        self.family: ImageFamily = family_of(checkpoint.hyper_parameters)
        self.image_size = input_size(checkpoint.hyper_parameters, self.family, image_size)
        model = model_from_checkpoint(checkpoint, torch.channels_last if device == "cpu" else None)
        self.model = model.to(device).eval()
        release_freed_memory()

    @classmethod
    def from_file(cls, path: Path, device: str = "cpu", image_size: Optional[int] = None) -> "ImageClassifier":
        from kifaru.models.checkpoint import read_checkpoint

        return cls(read_checkpoint(path, mmap=False), device, image_size)

    def to_input(self, image: Any) -> np.ndarray:
        """The network's input for a PIL RGB image (a crop or a whole photo)."""
        return self.family.to_input(image, self.image_size)

    def predict_proba(self, inputs: np.ndarray) -> np.ndarray:
        """(N, species) float32 softmax probabilities for inputs (N, 3, size, size)."""
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(inputs), CROPS_PER_CALL):
                batch = torch.from_numpy(np.ascontiguousarray(inputs[start : start + CROPS_PER_CALL])).to(self.device)
                if self.device == "cpu":
                    batch = batch.contiguous(memory_format=torch.channels_last)
                out.append(torch.softmax(self.model(batch).float(), dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.species)), dtype=np.float32)
