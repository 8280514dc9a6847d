"""MegadetectorLite: the YOLOX-tiny animal detector zamba uses to pick frames, loaded once per process.

Preprocessing and postprocessing follow zamba 2.7.2 (spec section 3) so that scores and boxes agree:
each frame is resized to fit ``image_width x image_height`` keeping its aspect ratio (PIL bicubic,
as ``ImageOps.pad`` does), placed top-left on black, and fed as raw 0-255 float32 RGB. A
detection's score is objectness x class confidence; detections below ``confidence`` are dropped,
then non-maximum suppression at ``nms_threshold``; boxes come back relative to the frame.

On the CPU the network runs in ONNX Runtime when it is installed (about twice PyTorch's speed
here), from an ONNX export made once per machine and kept in the model cache only after its
outputs were checked against PyTorch's; on CUDA/MPS, or without ONNX Runtime, it runs in PyTorch.
Frames are processed in chunks of a few, one chunk per core at a time, and for frames that leave
black rows below them (16:9 in a square input) ONNX Runtime skips those rows in the early layers
(kifaru.detection.banded), which gives the same outputs in less time.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
from PIL import Image

from kifaru.device import check_device, usable_cores
from kifaru.files import atomic_write
from kifaru.memory import release_freed_memory
from kifaru.models.registry import MEGADETECTOR_LITE, ModelEntry
from kifaru.models.weights import model_cache_dir, resolve_weights
from kifaru.notices import notify

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnxruntime", "torch")
# Frames per network call on the CPU (larger batches stop paying off: cache pressure). On the CPU,
# each core runs its own calls single-threaded: on 2 cores that is ~15% faster than one call on
# two threads, whose threads wait for each other at every layer.
CPU_BATCH = 4
# How far ONNX Runtime may differ from PyTorch on the probe images before it is not used.
_MAX_PROB_DIFF = 1e-4
_MAX_BOX_DIFF_PX = 0.05


# Picture heights are rounded up to this many input rows, so that a handful of banded networks
# serve every frame size (each is exported once per machine).
BAND_STEP = 32


def band_rows(content_rows: int, input_height: int) -> int:
    """Input rows a banded network for pictures ``content_rows`` high takes (a multiple of
    BAND_STEP, at most ``input_height``)."""
    return min(input_height, BAND_STEP * math.ceil(max(content_rows, 1) / BAND_STEP))


@dataclass(frozen=True)
class FrameDetections:
    """The animals found in one frame, most confident first."""

    boxes: np.ndarray  # (n, 4) float64: x1, y1, x2, y2 relative to the frame's width and height
    scores: np.ndarray  # (n,) float64: objectness x class confidence

    @property
    def score(self) -> float:
        """The frame's score: its highest detection score, 0 when nothing was found."""
        return float(self.scores.max()) if len(self.scores) else 0.0

    def __len__(self) -> int:
        return len(self.scores)


def fit_size(height: int, width: int, out_height: int, out_width: int) -> tuple[int, int]:
    """(height, width) of a frame resized to fit the output keeping its aspect ratio (PIL's rule)."""
    frame_ratio, out_ratio = width / height, out_width / out_height
    if frame_ratio > out_ratio:
        new_height = round(height / width * out_width)
        return new_height, out_width
    if frame_ratio < out_ratio:
        return out_height, round(width / height * out_height)
    return out_height, out_width


def fit_to_input(frame: np.ndarray, input_height: int, input_width: int) -> np.ndarray:
    """The frame resized to fit the detector's input keeping its aspect ratio (bicubic with PIL's
    antialiasing, exactly as zamba's ``ImageOps.pad``: the detector's scores are sensitive to it)."""
    height, width = fit_size(frame.shape[0], frame.shape[1], input_height, input_width)
    if (height, width) == frame.shape[:2]:
        return frame
    return np.asarray(Image.fromarray(np.ascontiguousarray(frame)).resize((width, height), Image.Resampling.BICUBIC))


def to_batch(fitted: Sequence[np.ndarray], input_height: int, input_width: int) -> np.ndarray:
    """Fitted RGB uint8 images -> one float32 (N, 3, H, W) batch of raw 0-255 values, each image
    at the top-left on black."""
    batch = np.zeros((len(fitted), 3, input_height, input_width), dtype=np.float32)
    for i, image in enumerate(fitted):
        image = image[:input_height, :input_width]
        batch[i, :, : image.shape[0], : image.shape[1]] = image.transpose(2, 0, 1)
    return batch


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, highest score first (torchvision's rule:
    a box is dropped when its IoU with a kept box exceeds ``threshold``)."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        width = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        height = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        inter = width * height
        iou = inter / (areas[best] + areas[rest] - inter)
        order = rest[~(iou > threshold)]
    return np.asarray(keep, dtype=np.int64)


def postprocess(
    prediction: np.ndarray,
    confidence: float,
    nms_threshold: float,
    frame_size: tuple[int, int],
    input_size: tuple[int, int],
) -> FrameDetections:
    """One frame's raw network output ``(anchors, 5 + classes)`` -> its detections."""
    class_conf = prediction[:, 5:].max(axis=1)
    class_id = prediction[:, 5:].argmax(axis=1)
    scores = prediction[:, 4] * class_conf
    keep = scores >= confidence
    if not keep.any():
        return FrameDetections(np.zeros((0, 4)), np.zeros(0))
    centre, size, scores, class_id = prediction[keep, :2], prediction[keep, 2:4], scores[keep], class_id[keep]
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    # Per-class NMS (torchvision's batched_nms trick): shift each class's boxes apart.
    offsets = class_id[:, None] * (boxes.max() + 1)
    kept = nms(boxes + offsets, scores, nms_threshold)
    height, width = frame_size
    ratio = min(input_size[1] / width, input_size[0] / height)
    boxes = boxes[kept].astype(np.float64) / ratio / np.array([width, height, width, height])
    return FrameDetections(boxes, scores[kept].astype(np.float64))


class MegadetectorLite:
    """The detector network on one device. Use :func:`load_megadetector_lite` to share one per process."""

    def __init__(
        self, weights: Path, device: str = "cpu", runtime: str = "auto", weights_sha256: Optional[str] = None
    ) -> None:
        """``weights_sha256``: the file's sha256 when already known (it names the ONNX export)."""
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
        self.weights = Path(weights)
        self.device = device
        self._torch_model: Any = None
        self._torch_lock = threading.Lock()
        self._onnx: Optional[_OnnxNetworks] = None
        self._pool = None
        self.runtime = "torch"
        if device == "cpu" and runtime in ("auto", "onnxruntime"):
            self._onnx = _OnnxNetworks.load(self.torch_model, self.weights, weights_sha256, required=runtime == "onnxruntime")
        if self._onnx is None:
            self.torch_model()  # a damaged file fails here, not at the first frame
        else:
            self.runtime = "onnxruntime"
            # Single-threaded ONNX Runtime calls run concurrently, one per core.
            self._cores = usable_cores()
            self._pool = ThreadPoolExecutor(self._cores, thread_name_prefix="megadetector-lite")

    def torch_model(self) -> Any:
        """The PyTorch network, built on first use: with ONNX Runtime and its exports already in
        the model cache, a process never needs PyTorch (about 400 MB less memory per process)."""
        with self._torch_lock:
            if self._torch_model is None:
                import torch

                from kifaru.detection.yolox import YOLOX

                checkpoint = torch.load(self.weights, map_location="cpu", weights_only=True)
                model = YOLOX(num_classes=1, depth=0.33, width=0.375)
                model.load_state_dict(checkpoint["model"] if "model" in checkpoint else checkpoint)
                self._torch_model = model.eval().to(self.device)
            return self._torch_model

    def __repr__(self) -> str:
        return f"MegadetectorLite({self.weights.name}, device={self.device}, runtime={self.runtime})"

    def raw_outputs(self, batch: np.ndarray, content_rows: Optional[int] = None) -> np.ndarray:
        """Network outputs for a float32 (N, 3, H, W) batch: (N, anchors, 6). ``content_rows``:
        the rows from which on every image of the batch is black, when known (ONNX Runtime then
        computes the early layers only where the pictures reach: the same outputs, faster)."""
        if self._onnx is not None:
            return self._onnx.run(batch, content_rows)
        import torch

        with torch.inference_mode():
            return self.torch_model()(torch.from_numpy(batch).to(self.device)).float().cpu().numpy()

    @property
    def uses_every_core(self) -> bool:
        """Whether its calls keep every CPU core busy (ONNX Runtime on the CPU)."""
        return self._pool is not None

    def submit_size(self, frame_batch_size: int) -> int:
        """How many frames a caller that decodes while the detector runs should hand over at once:
        ``frame_batch_size`` on a GPU; on the CPU two per core, so that scoring starts early and
        keeps every core busy while decoding goes on."""
        return frame_batch_size if self._pool is None else min(frame_batch_size, 2 * self._cores)

    def detect(self, frames: Sequence[np.ndarray], **settings: Any) -> list[FrameDetections]:
        """Detections for RGB uint8 frames of any size. ``settings``: image_height, image_width,
        confidence, nms_threshold, batch_size (defaults 640, 640, 0.25, 0.45, 24)."""
        return self._detect(frames, [frame.shape[:2] for frame in frames], fitted=False, **settings)

    def detect_fitted(
        self, fitted: Sequence[np.ndarray], frame_sizes: Sequence[tuple[int, int]], **settings: Any
    ) -> list[FrameDetections]:
        """Detections for frames already passed through :func:`fit_to_input`; ``frame_sizes``
        are the (height, width) of the frames they came from (boxes are relative to those)."""
        return self._detect(fitted, frame_sizes, fitted=True, **settings)

    def _detect(
        self,
        images: Sequence[np.ndarray],
        frame_sizes: Sequence[tuple[int, int]],
        *,
        fitted: bool,
        image_height: int = 640,
        image_width: int = 640,
        confidence: float = 0.25,
        nms_threshold: float = 0.45,
        batch_size: int = 24,
    ) -> list[FrameDetections]:
        def run(start: int, stop: int) -> list[FrameDetections]:
            chunk = images[start:stop] if fitted else [fit_to_input(f, image_height, image_width) for f in images[start:stop]]
            raw = self.raw_outputs(to_batch(chunk, image_height, image_width), max(image.shape[0] for image in chunk))
            return [
                postprocess(out, confidence, nms_threshold, size, (image_height, image_width))
                for out, size in zip(raw, frame_sizes[start:stop])
            ]

        if self._pool is None:
            # PyTorch parallelises inside a call: frame_batch_size frames per call on a GPU,
            # CPU_BATCH on the CPU.
            step = batch_size if self.device != "cpu" else min(batch_size, CPU_BATCH)
            results = [run(start, start + step) for start in range(0, len(images), step)]
        else:
            # Chunks of at most CPU_BATCH, as many as keep every core busy to the end (12 frames on
            # 2 cores: 4 chunks of 3, not 4 + 4 + 4).
            count = self._cores * math.ceil(len(images) / (self._cores * CPU_BATCH)) or 1
            step = min(batch_size, max(1, math.ceil(len(images) / count)))
            results = list(self._pool.map(lambda start: run(start, start + step), range(0, len(images), step)))
        return [found for chunk in results for found in chunk]




@functools.lru_cache(maxsize=4)
def _load(weights: Path, device: str, runtime: str, weights_sha256: str) -> MegadetectorLite:
    return MegadetectorLite(weights, device, runtime, weights_sha256)


def load_megadetector_lite(
    weights: Optional[Path] = None,
    device: Optional[str] = None,
    runtime: str = "auto",
    entry: ModelEntry = MEGADETECTOR_LITE,
) -> MegadetectorLite:
    """The process's detector for these weights and device (loaded on first use, then shared).

    ``weights`` None: the model cache (fetched on first use) or ``KIFARU_MEGADETECTOR_LITE_WEIGHTS``.
    ``device`` None: CUDA, then MPS, then the CPU. ``runtime`` "auto": ONNX Runtime on the CPU
    when installed, else PyTorch; env ``KIFARU_DETECTOR_RUNTIME`` overrides "auto". A device
    that is not here is a ConfigError, before any weights are fetched.
    """
    device = check_device(device, "megadetector_lite_config.device")
    path = resolve_weights(entry, weights)
    if runtime == "auto":
        runtime = os.environ.get("KIFARU_DETECTOR_RUNTIME", "auto")
    # resolve_weights checked the file against the registry: its sha256 is the entry's.
    return _load(path.resolve(), device, runtime, entry.weights_sha256)


def _probe_batch() -> np.ndarray:
    """Two images with structure at every scale, to compare runtimes on."""
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 255, (3, 640, 640))
    yy, xx = np.mgrid[0:640, 0:640]
    rings = 127.5 + 127.5 * np.sin(np.hypot(yy - 250, xx - 300) / 9.0)
    return np.stack([noise, np.broadcast_to(rings, (3, 640, 640))]).astype(np.float32)


_UNMADE = object()


class _OnnxNetworks:
    """The network in ONNX Runtime: the full one, and banded ones (see kifaru.detection.banded)
    made on first use for each picture height, every one exported once per machine into the model
    cache and kept only if its outputs agree with PyTorch's."""

    def __init__(self, torch_model: Callable[[], Any], onnx_stem: Path, onnxruntime) -> None:
        self._torch_model = torch_model  # builds the PyTorch network when an export is needed
        self._stem = onnx_stem
        self._onnxruntime = onnxruntime
        self._options = onnxruntime.SessionOptions()
        self._options.intra_op_num_threads = 1
        self._options.inter_op_num_threads = 1
        self._options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._sessions: dict[int, Any] = {}  # input rows -> session (None: that band failed)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, torch_model: Callable[[], Any], weights: Path, weights_sha256: Optional[str], required: bool) -> Optional["_OnnxNetworks"]:
        """The full network's session ready, or None (with the reason logged) when unavailable."""
        try:
            import onnxruntime
        except ImportError:
            if required:
                raise
            log.info("onnxruntime is not installed; the detector runs in PyTorch")
            return None
        from kifaru.models.download import sha256_of

        networks = cls(torch_model, _onnx_stem(weights, weights_sha256 or sha256_of(weights)), onnxruntime)
        try:
            networks._sessions[0] = networks._session(0)
        except Exception as error:  # any exporter/runtime failure: PyTorch still works
            if required:
                raise
            log.warning("ONNX Runtime cannot run the detector (%s); using PyTorch", error)
            return None
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

    def _banded_session(self, rows: int):
        try:
            return self._session(rows)
        except Exception as error:  # the full network still works
            log.warning("the banded detector network for %d rows is unavailable (%s); using the full one", rows, error)
            return None

    def _session(self, rows: int):
        """rows 0: the full network; else the banded one taking that many input rows."""
        path = _onnx_path(self._stem, rows)
        if not path.is_file():
            _notify_export(rows)
            _export_checked(self._torch_model(), rows, path, self._onnxruntime, self._options)
        session = self._onnxruntime.InferenceSession(str(path), self._options, providers=["CPUExecutionProvider"])
        release_freed_memory()  # the buffers ONNX Runtime used to build it
        return session


def _onnx_stem(weights: Path, weights_sha256: str) -> Path:
    return model_cache_dir() / "onnx" / f"{weights.stem}-{weights_sha256[:12]}"


def _onnx_path(stem: Path, rows: int) -> Path:
    """rows 0: the full network's export; else the banded one taking that many input rows."""
    return stem.with_name(stem.name + (f"-rows{rows}" if rows else "") + ".onnx")


def _notify_export(rows: int) -> None:
    what = f"its network for pictures {rows} input rows high" if rows else "the network"
    notify(f"MegadetectorLite: exporting {what} to ONNX Runtime (once per machine, a few seconds)")


def export_before_workers(weights: Path, weights_sha256: str, device: str) -> None:
    """Make the full network's ONNX export once, here, before worker processes that each load the
    detector start: each would otherwise export it itself, all at the same time, and unseen (no
    one listens to a worker's notices). The export runs in a child process, so that this one does
    not load PyTorch. Nothing happens on a GPU, without ONNX Runtime, or with the export made; a
    failed export is left to the workers, which fall back to PyTorch and say why."""
    runtime = os.environ.get("KIFARU_DETECTOR_RUNTIME", "auto")
    if device != "cpu" or runtime == "torch" or _onnx_path(_onnx_stem(Path(weights), weights_sha256), 0).is_file():
        return
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return
    from kifaru.processes import run_in_child

    _notify_export(0)
    # A failure is not reported here: each worker tries again and falls back to PyTorch, saying why.
    run_in_child(MegadetectorLite, Path(weights), "cpu", "onnxruntime", weights_sha256)


def _export_checked(model, rows: int, onnx_path: Path, onnxruntime, options) -> None:
    """Export to ONNX and keep the file only if its outputs agree with PyTorch's on probe images
    (``rows``: 0 for the full network, else a banded one, probed with images black below ``rows``)."""
    import torch

    from kifaru.detection.banded import BandedYOLOX

    probe = _probe_batch()
    if rows:
        probe[:, :, rows:] = 0
        network = BandedYOLOX(model, rows).eval()
    else:
        network = model
    network_input = np.ascontiguousarray(probe[:, :, : rows or None])
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter announces its own deprecation
        _export(network, network_input, buffer, dynamic_size=not rows)
    session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": network_input})[0]
    with torch.inference_mode():
        expected = model(torch.from_numpy(probe)).numpy()
    prob_diff = float(np.abs(got[..., 4:] - expected[..., 4:]).max())
    box_diff = float(np.abs(got[..., :4] - expected[..., :4]).max())
    if prob_diff > _MAX_PROB_DIFF or box_diff > _MAX_BOX_DIFF_PX:
        raise RuntimeError(f"its outputs differ from PyTorch's (scores by {prob_diff:.2g}, boxes by {box_diff:.2g} px)")
    with atomic_write(onnx_path) as out:
        out.write(buffer.getvalue())


def _export(network, probe: np.ndarray, buffer: io.BytesIO, dynamic_size: bool) -> None:
    import torch

    torch.onnx.export(
        network,
        torch.from_numpy(probe[:1]),
        buffer,
        input_names=["images"],
        output_names=["detections"],
        dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"} if dynamic_size else {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
