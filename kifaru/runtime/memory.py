"""Memory: giving freed memory back to the operating system, and how much the system has left.

glibc keeps memory that large temporary buffers used (ONNX Runtime builds its sessions with
several hundred MB of them; a clip's decoded frames are tens of MB) for later reuse, so a process's
footprint stays at its peak. ``malloc_trim`` returns it: after loading a model and after each clip
in a loading process this keeps a run's memory near what it really holds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any, Optional


@functools.lru_cache(maxsize=1)
def _libc() -> Optional[Any]:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None  # glibc only


def release_freed_memory() -> bool:
    """Return freed heap memory to the system; False where that is not possible (not glibc)."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def available_memory_bytes() -> Optional[int]:
    """Memory the system can give without swapping (MemAvailable, Linux); None where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def skip_triton_without_gpu() -> bool:
    """Keep Triton, a compiler for GPU kernels, out of a process that has no GPU to run them on.

    torchvision's import (timm imports it) pulls in ``torch._dynamo``, which imports Triton when it
    is installed (as with PyTorch's CUDA wheels) only to note one of its types: about 90 MB of
    resident memory and most of a second, in every process that builds a classifier. Without a
    GPU Triton has nothing to do, and PyTorch treats it as absent when the import fails. True when
    it was kept out; never done where CUDA is available or Triton is already loaded."""
    import sys

    if "triton" in sys.modules:
        return False
    import torch

    if torch.cuda.is_available():
        return False
    sys.modules["triton"] = None  # a later ``import triton`` raises ImportError
    return True
