"""Choosing the device models run on: an explicit choice, else CUDA, then Apple's MPS, then the CPU.

Probing happens here, when a model is loaded, never while a config is validated.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional


def resolve_device(device: Optional[str] = None) -> str:
    """``device`` as given, or the best one present ("cuda", "mps" or "cpu") when None/"auto"."""
    if device not in (None, "auto"):
        return device
    if not _gpu_possible():
        return "cpu"  # without importing PyTorch (about 500 MB in every process that does)
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _gpu_possible() -> bool:
    """False only where PyTorch cannot see a GPU: Linux with none of NVIDIA's driver, ROCm's
    device (AMD, which PyTorch also calls "cuda") or WSL's GPU device."""
    if sys.platform.startswith("linux"):
        return any(Path(p).exists() for p in ("/proc/driver/nvidia/version", "/dev/kfd", "/dev/dxg"))
    return True


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, e.g. a cluster job's allocation)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
