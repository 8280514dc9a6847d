"""Which runtime runs a network, ONNX Runtime or PyTorch: one rule for the detector and the classifiers.

On the CPU, ONNX Runtime runs the networks kifaru can export (the detector, TimeDistributedEfficientNet)
about twice as fast as PyTorch, and a process that runs nothing else never imports PyTorch (about
500 MB less memory). PyTorch runs everything else: a GPU, another architecture, or an export that
failed. A fallback halves the speed, so the choice carries its reason and the caller shows it.

One environment variable per kind of network forces a runtime: ``KIFARU_DETECTOR_RUNTIME`` and
``KIFARU_CLASSIFIER_RUNTIME``, each ``auto`` (the default), ``onnxruntime`` or ``pytorch``
(``torch`` is the same as ``pytorch``: the detector's old name). With ``onnxruntime`` forced, a
failure to export or load is raised instead of falling back; off the CPU, or for a network ONNX
Runtime does not run, PyTorch runs it all the same.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Callable, Optional

from kifaru.exceptions import ConfigError

AUTO = "auto"
ONNXRUNTIME = "onnxruntime"
PYTORCH = "pytorch"
RUNTIMES = (AUTO, ONNXRUNTIME, PYTORCH)
# Other spellings accepted where a runtime is named: the detector's runtime was "torch" before.
ALIASES = {"torch": PYTORCH}
DETECTOR_RUNTIME_ENV = "KIFARU_DETECTOR_RUNTIME"
CLASSIFIER_RUNTIME_ENV = "KIFARU_CLASSIFIER_RUNTIME"
_DISPLAY_NAMES = {ONNXRUNTIME: "ONNX Runtime", PYTORCH: "PyTorch"}


def runtime_name(value: str, source: str = "runtime") -> str:
    """``value`` as one of RUNTIMES (an alias replaced); ConfigError naming ``source`` (the
    argument or environment variable it came from) and the valid names otherwise."""
    name = ALIASES.get(value, value)
    if name not in RUNTIMES:
        valid = ", ".join(RUNTIMES) + "".join(f" (or {alias} for {target})" for alias, target in ALIASES.items())
        raise ConfigError(f"{source} {value!r}: not a runtime; valid: {valid}")
    return name


def requested_runtime(env_var: str, runtime: str = AUTO) -> str:
    """The runtime asked for: ``runtime`` when it is not "auto", else the one ``env_var`` names
    ("auto" when it is unset or empty)."""
    name = runtime_name(runtime)
    if name != AUTO:
        return name
    value = os.environ.get(env_var, "")
    return runtime_name(value, env_var) if value else AUTO


@dataclass(frozen=True)
class RuntimeChoice:
    """Which runtime runs a network; ``fallback_reason``: why not ONNX Runtime, where it was the
    choice and failed (None otherwise)."""

    runtime: str  # ONNXRUNTIME or PYTORCH
    fallback_reason: Optional[str] = None

    @property
    def display_name(self) -> str:
        """"ONNX Runtime" or "PyTorch"."""
        return _DISPLAY_NAMES[self.runtime]

    def describe(self) -> str:
        """For the user, e.g. "ONNX Runtime", "PyTorch (ONNX Runtime failed)"."""
        return self.display_name + (" (ONNX Runtime failed)" if self.fallback_reason else "")


def onnxruntime_installed() -> bool:
    """Whether ONNX Runtime can be imported (found without importing it: that takes a while)."""
    return importlib.util.find_spec("onnxruntime") is not None


def choose_runtime(
    requested: str, device: str, *, supported: bool = True, prepare: Optional[Callable[[], object]] = None
) -> RuntimeChoice:
    """The runtime for a network on ``device``, given the ``requested`` one (see
    :func:`requested_runtime`) and whether ONNX Runtime can run this network at all
    (``supported``). ``prepare``: makes ONNX Runtime ready (finds or makes the checked export,
    opens it); where it fails PyTorch is the choice, with the reason, unless ONNX Runtime was
    requested explicitly: then its error is raised."""
    requested = runtime_name(requested)
    if requested == PYTORCH or device != "cpu" or not supported:
        return RuntimeChoice(PYTORCH)
    try:
        if not onnxruntime_installed():
            raise ImportError("onnxruntime is not installed")
        if prepare is not None:
            prepare()
    except Exception as error:  # any exporter or runtime failure: PyTorch still works
        return fall_back(requested, error)
    return RuntimeChoice(ONNXRUNTIME)


def fall_back(requested: str, error: Exception) -> RuntimeChoice:
    """PyTorch, because ONNX Runtime failed with ``error``; ``error`` itself raised where ONNX
    Runtime was requested explicitly."""
    if runtime_name(requested) == ONNXRUNTIME:
        raise error
    return RuntimeChoice(PYTORCH, str(error) or type(error).__name__)
