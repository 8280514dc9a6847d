"""Choosing the device models run on: an explicit choice, else CUDA, then Apple's MPS, then the CPU.

Probing happens here, when a model is loaded, never while a config is validated.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

from kifaru.exceptions import ConfigError


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


def available_devices() -> list[str]:
    """The devices here, named as a config names them: "cpu", then "cuda:0", "cuda:1", ... and
    "mps" where present. PyTorch is imported only where a GPU is possible."""
    devices = ["cpu"]
    if not _gpu_possible():
        return devices
    import torch

    devices += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def check_device(requested: str | int | None, source: str) -> str:
    """The device to run on for ``requested``, checked to be here; ConfigError naming ``source``
    (the option or field that asked, e.g. "--device", "gpus") and the devices here when it is not.

    ``requested``: "cpu", "cuda", "cuda:N" or "mps"; None or "auto" for the best one here; or an
    int, a number of CUDA GPUs (predict's and train's ``gpus``: 0 is the CPU, N > 0 gives "cuda").
    """
    if requested is None or requested == "auto":
        return resolve_device(None)
    if requested == "cpu" or requested == 0:
        return "cpu"
    if isinstance(requested, int):
        if requested < 0:
            raise ConfigError(f"{source} {requested}: give a number of GPUs, 0 for the CPU")
        wanted, device, fix = f"cuda:{requested - 1}", "cuda", f"use {source} 0 for the CPU"
    else:
        kind, colon, index = requested.partition(":")
        if kind not in ("cuda", "mps") or (colon and (kind != "cuda" or not index.isdigit())):
            raise ConfigError(f"{source} {requested}: not one of cpu, cuda, cuda:N, mps, auto")
        wanted, device = ("cuda:0" if requested == "cuda" else requested), requested
        fix = "give one of them, or leave it out for the best one here"
    here = available_devices()
    if wanted in here:
        return device
    gpus = sum(name.startswith("cuda") for name in here)
    if wanted == "mps":
        problem = "no Apple GPU (MPS) here"
    elif gpus == 0:
        problem = "no CUDA GPU here"
    else:
        problem = f"only {gpus} CUDA GPU{'s' if gpus > 1 else ''} here"
    raise ConfigError(f"{source} {requested}: {problem} (devices here: {', '.join(here)}); {fix}")


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
