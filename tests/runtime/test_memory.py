"""kifaru.runtime.memory: Triton kept out of a process without a GPU."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
import torch

CHILD = """
import json, sys
from kifaru.runtime.memory import skip_triton_without_gpu
skipped = skip_triton_without_gpu()
import torchvision.ops  # what pulls Triton in through torch._dynamo
from torch.utils._triton import has_triton_package
print(json.dumps({"skipped": skipped, "triton_loaded": sys.modules.get("triton") is not None,
                  "torch_sees_triton": has_triton_package()}))
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed (PyTorch without CUDA)")
@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: Triton stays")
def test_triton_is_kept_out_without_a_gpu_and_torch_carries_on():
    # A fresh process: this one may have loaded Triton already.
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.splitlines()[-1]) == {"skipped": True, "triton_loaded": False, "torch_sees_triton": False}


def test_nothing_is_done_once_triton_is_loaded(monkeypatch):
    from kifaru.runtime import memory

    marker = object()
    monkeypatch.setitem(sys.modules, "triton", marker)
    assert memory.skip_triton_without_gpu() is False
    assert sys.modules["triton"] is marker
