"""MegadetectorLite's network in ONNX Runtime: the full network, and banded ones (kifaru.detection.banded)
made on first use for each picture height.

Each is exported once per machine into the model cache and kept only if its outputs agree with
PyTorch's on probe images (kifaru.runtime.onnx does the exporting, checking and caching, as for
the classifiers). Sessions run single-threaded: the detector runs one call per core at a time.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from kifaru.detection.megadetector_lite import band_rows
from kifaru.notices import notify
from kifaru.runtime import onnx
from kifaru.runtime.memory import release_freed_memory

log = logging.getLogger(__name__)

# How far ONNX Runtime may differ from PyTorch on the probe images before it is not used.
_MAX_PROB_DIFF = 1e-4
_MAX_BOX_DIFF_PX = 0.05

_UNMADE = object()


class OnnxNetworks:
    """The full network's session, and the banded ones', each made on first use (a band whose
    export fails is not used: the full network serves those frames)."""

    def __init__(self, torch_model: Callable[[], Any], onnx_stem: Path) -> None:
        self._torch_model = torch_model  # builds the PyTorch network when an export is needed
        self._stem = onnx_stem
        self._sessions: dict[int, Any] = {}  # input rows -> session (None: that band failed)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, torch_model: Callable[[], Any], weights: Path, weights_sha256: Optional[str]) -> "OnnxNetworks":
        """The networks with the full one's session ready (exported first if not in the cache);
        any exporter or runtime failure is raised (the caller falls back to PyTorch)."""
        from kifaru.models.download import sha256_of

        networks = cls(torch_model, onnx_stem(weights, weights_sha256 or sha256_of(weights)))
        networks._sessions[0] = networks._session(0)
        return networks

    def run(self, batch: np.ndarray, content_rows: Optional[int]) -> np.ndarray:
        rows = band_rows(content_rows, batch.shape[2]) if content_rows else batch.shape[2]
        # Banded networks are made for the usual 640x640 input only (zamba's default).
        if rows < batch.shape[2] and batch.shape[2:] == (640, 640):
            session = self._sessions.get(rows, _UNMADE)
            if session is _UNMADE:
                with self._lock:
                    session = self._sessions.get(rows, _UNMADE)
                    if session is _UNMADE:
                        session = self._sessions[rows] = self._banded_session(rows)
            if session is not None:
                return session.run(None, {"images": np.ascontiguousarray(batch[:, :, :rows])})[0]
        return self._sessions[0].run(None, {"images": batch})[0]

    def _banded_session(self, rows: int) -> Any:
        try:
            return self._session(rows)
        except Exception as error:  # the full network still works
            log.warning("the banded detector network for %d rows is unavailable (%s); using the full one", rows, error)
            return None

    def _session(self, rows: int) -> Any:
        """rows 0: the full network; else the banded one taking that many input rows."""
        path = onnx_path(self._stem, rows)
        if not path.is_file():
            notify_export(rows)
            export_checked(self._torch_model(), rows, path)
        session = onnx.session(path, single_threaded=True)
        release_freed_memory()  # the buffers ONNX Runtime used to build it
        return session


def onnx_stem(weights: Path, weights_sha256: str) -> Path:
    """Where the detector's exports for these weights go (without suffix), in the model cache."""
    return onnx.export_stem(Path(weights).stem, weights_sha256)


def onnx_path(stem: Path, rows: int) -> Path:
    """rows 0: the full network's export; else the banded one taking that many input rows."""
    return stem.with_name(stem.name + (f"-rows{rows}" if rows else "") + ".onnx")


def notify_export(rows: int) -> None:
    what = f"its network for pictures {rows} input rows high" if rows else "the network"
    notify(f"MegadetectorLite: exporting {what} to ONNX Runtime (once per machine, a few seconds)")


def probe_batch() -> np.ndarray:
    """Two images with structure at every scale, to compare runtimes on."""
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 255, (3, 640, 640))
    yy, xx = np.mgrid[0:640, 0:640]
    rings = 127.5 + 127.5 * np.sin(np.hypot(yy - 250, xx - 300) / 9.0)
    return np.stack([noise, np.broadcast_to(rings, (3, 640, 640))]).astype(np.float32)


def export_checked(model: Any, rows: int, path: Path) -> None:
    """Export to ONNX and keep the file only if its outputs agree with PyTorch's on probe images
    (``rows``: 0 for the full network, else a banded one, probed with images black below ``rows``;
    either is compared with the full PyTorch network)."""
    import torch

    from kifaru.detection.banded import BandedYOLOX

    probe = probe_batch()
    if rows:
        probe[:, :, rows:] = 0
    network = BandedYOLOX(model, rows).eval() if rows else model

    def network_input(images: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(images[:, :, : rows or None])

    verification = onnx.Verification(
        probe,
        expected=lambda images: model(torch.from_numpy(images)).numpy(),
        got=lambda sessions, images: sessions[0].run(None, {"images": network_input(images)})[0],
        compare=_compare_detections,
    )
    dynamic = {0: "batch"} if rows else {0: "batch", 2: "height", 3: "width"}
    graph = onnx.Graph(network, network_input(probe)[:1], "images", "detections", dynamic)
    onnx.export_checked([(path, graph)], verification)


def _compare_detections(got: np.ndarray, expected: np.ndarray) -> Optional[str]:
    """Scores (objectness, class confidence) within _MAX_PROB_DIFF, box centres and sizes within
    _MAX_BOX_DIFF_PX input pixels."""
    prob_diff = float(np.abs(got[..., 4:] - expected[..., 4:]).max())
    box_diff = float(np.abs(got[..., :4] - expected[..., :4]).max())
    # (NaN differences compare False: `not <=` rejects them.)
    if not (prob_diff <= _MAX_PROB_DIFF and box_diff <= _MAX_BOX_DIFF_PX):
        return f"its outputs differ from PyTorch's (scores by {prob_diff:.2g}, boxes by {box_diff:.2g} px)"
    return None


def export_before_workers(weights: Path, weights_sha256: str, device: str) -> None:
    """Make the full network's ONNX export once, here, before worker processes that each load the
    detector start: each would otherwise export it itself, all at the same time, and unseen (no
    one listens to a worker's notices). The export runs in a child process, so that this one does
    not load PyTorch. Nothing happens where the detector would not run in ONNX Runtime (a GPU,
    KIFARU_DETECTOR_RUNTIME=pytorch, no ONNX Runtime) or with the export made; a failed export
    is left to the workers, which fall back to PyTorch and say why."""
    from kifaru.detection.megadetector_lite import MegadetectorLite
    from kifaru.runtime.choice import DETECTOR_RUNTIME_ENV, PYTORCH, onnxruntime_installed, requested_runtime

    if device != "cpu" or requested_runtime(DETECTOR_RUNTIME_ENV) == PYTORCH or not onnxruntime_installed():
        return
    if onnx_path(onnx_stem(Path(weights), weights_sha256), 0).is_file():
        return
    notify_export(0)
    # A failure is not reported here: each worker tries again and falls back to PyTorch, saying why.
    onnx.export_in_child(MegadetectorLite, Path(weights), "cpu", "onnxruntime", weights_sha256)
