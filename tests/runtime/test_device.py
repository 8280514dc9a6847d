"""``kifaru.runtime.device``: the device models run on."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kifaru.runtime import device
from kifaru.exceptions import ConfigError


def test_an_explicit_device_is_kept():
    assert device.resolve_device("cuda:1") == "cuda:1"


def test_without_a_gpu_driver_the_cpu_is_chosen_without_importing_torch(monkeypatch):
    code = (
        "import sys; from kifaru.runtime import device; device._gpu_possible = lambda: False; "
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


# -- check_device: the one check of a requested device, for every command ----------------------

@pytest.fixture
def no_gpu(monkeypatch):
    """A machine without a GPU driver, whatever this one has."""
    monkeypatch.setattr(device, "_gpu_possible", lambda: False)


@pytest.fixture
def one_cuda_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(device, "_gpu_possible", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize("requested", ["cuda", "cuda:0", "mps", 1, 2])
def test_a_device_that_is_not_here_is_a_config_error_naming_the_option_and_the_devices(no_gpu, requested):
    with pytest.raises(ConfigError) as raised:
        device.check_device(requested, "--device")
    message = str(raised.value)
    assert message.startswith(f"--device {requested}: no ")
    assert "(devices here: cpu)" in message
    assert ("MPS" if requested == "mps" else "CUDA") in message


def test_the_cpu_and_the_best_device_are_always_here(no_gpu):
    assert [device.check_device(r, "x") for r in ("cpu", None, "auto", 0)] == ["cpu"] * 4


def test_without_a_gpu_driver_the_check_does_not_import_torch():
    code = (
        "import sys; from kifaru.runtime import device; device._gpu_possible = lambda: False\n"
        "try: device.check_device('cuda', '--device')\n"
        "except Exception as error: print(type(error).__name__, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["ConfigError", "False"]


def test_with_one_gpu_a_second_one_is_refused_and_the_first_is_given(one_cuda_gpu):
    assert device.available_devices() == ["cpu", "cuda:0"]
    assert device.check_device("cuda", "--device") == "cuda"
    assert device.check_device("cuda:0", "--device") == "cuda:0"
    assert device.check_device(1, "gpus") == "cuda"
    with pytest.raises(ConfigError, match=r"^--device cuda:1: only 1 CUDA GPU here \(devices here: cpu, cuda:0\)"):
        device.check_device("cuda:1", "--device")
    with pytest.raises(ConfigError, match=r"^gpus 2: only 1 CUDA GPU here \(devices here: cpu, cuda:0\); use gpus 0 for the CPU"):
        device.check_device(2, "gpus")
    with pytest.raises(ConfigError, match=r"^--device mps: no Apple GPU \(MPS\) here"):
        device.check_device("mps", "--device")


def test_a_device_name_kifaru_does_not_know_is_refused(no_gpu):
    with pytest.raises(ConfigError, match="not one of cpu, cuda, cuda:N, mps, auto"):
        device.check_device("gpu", "--device")
    with pytest.raises(ConfigError, match="not one of"):
        device.check_device("mps:1", "--device")
    with pytest.raises(ConfigError, match="not one of"):
        device.check_device("cuda:", "--device")
