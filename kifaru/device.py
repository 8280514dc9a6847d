"""Choosing the device models run on: an explicit choice, else CUDA, then Apple's MPS, then the CPU.

Probing happens here, when a model is loaded, never while a config is validated.
"""

from __future__ import annotations

from typing import Optional


def resolve_device(device: Optional[str] = None) -> str:
    """``device`` as given, or the best one present ("cuda", "mps" or "cpu") when None/"auto"."""
    if device not in (None, "auto"):
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"
