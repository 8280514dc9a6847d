"""``kifaru.device``: the device models run on."""

from __future__ import annotations

import subprocess
import sys

from kifaru import device


def test_an_explicit_device_is_kept():
    assert device.resolve_device("cuda:1") == "cuda:1"


def test_without_a_gpu_driver_the_cpu_is_chosen_without_importing_torch(monkeypatch):
    code = (
        "import sys; from kifaru import device; device._gpu_possible = lambda: False; "
        "print(device.resolve_device(None), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["cpu", "False"]


def test_with_a_possible_gpu_torch_decides(monkeypatch):
    import torch

    monkeypatch.setattr(device, "_gpu_possible", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.resolve_device("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert device.resolve_device(None) == "cpu"
