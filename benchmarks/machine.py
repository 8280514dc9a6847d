"""The machine a benchmark ran on, for its report (imported by this folder's scripts)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# /proc/cpuinfo flag -> the name the reports use: the vector and matrix instructions that ONNX
# Runtime (MLAS) and oneDNN pick kernels by (int8 dot products: VNNI; matrix tiles: AMX).
INSTRUCTION_SETS = {
    "avx2": "AVX2",
    "fma": "FMA",
    "avx512f": "AVX-512",
    "avx512bw": "AVX-512BW",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "amx_tile": "AMX",
    "amx_int8": "AMX-INT8",
    "amx_bf16": "AMX-BF16",
}


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty off Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def instruction_sets() -> dict[str, bool]:
    """Which of INSTRUCTION_SETS the CPU has, by report name."""
    flags = cpu_flags()
    return {name: flag in flags for flag, name in INSTRUCTION_SETS.items()}


def onednn_isa(python: str | None = None) -> str | None:
    """The instruction set oneDNN (PyTorch's CPU convolutions) dispatches to on this CPU, from its
    verbose log of one convolution run in a child ``python`` (default: this one); None if it
    cannot be told. Costs a torch import (a second or two)."""
    # 64x64: PyTorch keeps smaller convolutions (32x32 here) off oneDNN, and then nothing is logged.
    code = "import torch; torch.nn.functional.conv2d(torch.randn(1, 16, 64, 64), torch.randn(16, 16, 3, 3))"
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "DNNL_VERBOSE": "1"}
    try:
        out = subprocess.run([python or sys.executable, "-c", code], capture_output=True, text=True, env=env,
                             timeout=120).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if ",isa:" in line:
            return line.split(",isa:", 1)[1].strip()
    return None


def memory_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def machine() -> dict:
    """CPU, cores, memory, load, and the versions of what kifaru runs on."""
    import av
    import numpy as np
    import torch

    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = None
    return {
        "cpu": cpu_model(),
        "instruction_sets": [name for name, present in instruction_sets().items() if present],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": os.cpu_count(),
        "memory_gib": memory_total_gib(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "onnxruntime": ort,
        "pyav": av.__version__,
        "numpy": np.__version__,
    }
