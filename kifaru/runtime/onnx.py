"""A PyTorch network exported to ONNX, checked against PyTorch, and cached by its weights' sha256.

One routine for every network kifaru runs in ONNX Runtime (the detector, its banded variants, the
classifiers): each caller says what to export (:class:`Graph`) and how to check it
(:class:`Verification`: its probe inputs, PyTorch's outputs on them, the exported graphs' outputs,
and the comparison with the caller's tolerance); :func:`export_checked` exports, checks, and
keeps the files only when the check passes. The files live in the model cache (beside the
weights), named after the weights' sha256, so that a changed checkpoint is exported again.

:func:`export_in_child` runs an export in a spawned process, so that the process that asks never
imports PyTorch (about 500 MB), and returns why it failed, as a fallback reason, instead of raising.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from kifaru.exceptions import OnnxExportError
from kifaru.files import atomic_write

# The ONNX opset of every export (ONNX Runtime 1.17, kifaru's oldest, runs it).
OPSET = 17
# Hex digits of the weights' sha256 in an export's file name.
_SHA_DIGITS = 16


@dataclass(frozen=True)
class Graph:
    """One PyTorch module to export as one ONNX graph with one input and one output."""

    module: Any  # a torch.nn.Module
    example: np.ndarray  # float32 example input; sizes along dynamic_axes may differ at run time
    input_name: str
    output_name: str
    dynamic_axes: Mapping[int, str]  # input dimension -> its name (batch, height, ...)


@dataclass(frozen=True)
class Verification:
    """How an export is checked: ``expected(probe)`` is PyTorch's output on the probe, ``got(sessions,
    probe)`` the exported graphs' (ONNX Runtime sessions in the order the graphs were given), and
    ``compare(got, expected)`` says why they disagree beyond the caller's tolerance, or None."""

    probe: Any
    expected: Callable[[Any], np.ndarray]
    got: Callable[[Sequence[Any], Any], np.ndarray]
    compare: Callable[[np.ndarray, np.ndarray], Optional[str]]


def export_stem(name: str, weights_sha256: str, cache_dir: Optional[Path] = None) -> Path:
    """Where the exports of the network ``name`` with these weights go, without suffix: in the
    model cache (``cache_dir``; None: MODEL_CACHE_DIR, else the user cache) under ``onnx/``."""
    from kifaru.models.weights import model_cache_dir

    return model_cache_dir(cache_dir) / "onnx" / f"{name}-{weights_sha256[:_SHA_DIGITS]}"


def is_exported(paths: Sequence[Path]) -> bool:
    """Whether every file of an export is in place."""
    return all(Path(path).is_file() for path in paths)


def session(model: Union[bytes, Path], single_threaded: bool = False) -> Any:
    """An ONNX Runtime session on the CPU for a graph (its bytes or file). ``single_threaded``: for
    callers that run one call per core at a time (faster on few cores than one call spread over
    them, whose threads wait for each other at every layer); no spinning threads either."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if single_threaded:
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def export_graph(graph: Graph) -> bytes:
    """The module as an ONNX graph (TorchScript-based exporter, OPSET)."""
    import torch

    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter announces its own deprecation
        torch.onnx.export(
            graph.module.eval(),
            (torch.from_numpy(np.ascontiguousarray(graph.example)),),
            out,
            input_names=[graph.input_name],
            output_names=[graph.output_name],
            dynamic_axes={graph.input_name: dict(graph.dynamic_axes)},
            opset_version=OPSET,
            dynamo=False,
        )
    return out.getvalue()


def verify(sessions: Sequence[Any], verification: Verification) -> None:
    """OnnxExportError unless the sessions give PyTorch's outputs on the probe (the caller's comparison)."""
    import torch

    with torch.inference_mode():
        expected = np.asarray(verification.expected(verification.probe))
    got = np.asarray(verification.got(sessions, verification.probe))
    problem = verification.compare(got, expected)
    if problem is not None:
        raise OnnxExportError(problem)


def export_checked(graphs: Sequence[tuple[Path, Graph]], verification: Verification) -> list[bytes]:
    """Export each graph, check them together (:func:`verify`), and only then write each to its
    path (atomically; the first path last, so that its presence means the export is complete).
    Returns the graphs' bytes."""
    exported = [export_graph(graph) for _, graph in graphs]
    verify([session(model) for model in exported], verification)
    for (path, _), model in reversed(list(zip(graphs, exported))):
        with atomic_write(Path(path)) as out:
            out.write(model)
    return exported


def export_in_child(target: Callable[..., Any], *args: Any) -> Optional[str]:
    """Run ``target(*args)`` (an importable function that makes a checked export, e.g. with
    :func:`export_checked`) in a spawned process: None when it succeeded, else why not, in words
    (the reason a caller falling back to PyTorch gives)."""
    from kifaru.runtime.processes import run_in_child

    return run_in_child(target, *args, name="the ONNX export process")
