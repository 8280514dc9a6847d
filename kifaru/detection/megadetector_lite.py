"""MegadetectorLite: the YOLOX-tiny animal detector zamba uses to pick frames, loaded once per process.

Preprocessing and postprocessing follow zamba 2.7.2 (spec section 3) so that scores and boxes agree:
each frame is resized to fit ``image_width x image_height`` keeping its aspect ratio (PIL bicubic,
as ``ImageOps.pad`` does), placed top-left on black, and fed as raw 0-255 float32 RGB. A
detection's score is objectness x class confidence; detections below ``confidence`` are dropped,
then non-maximum suppression at ``nms_threshold``; boxes come back relative to the frame.

On the CPU the network runs in ONNX Runtime when it is installed (about twice PyTorch's speed
here), from an ONNX export made once per machine and kept in the model cache only after its
outputs were checked against PyTorch's (kifaru.detection.onnx_networks); on CUDA/MPS, without ONNX
Runtime, or after a failed export, it runs in PyTorch (kifaru.runtime.choice, the classifiers' rule).
Frames are processed in chunks of a few, one chunk per core at a time, and for frames that leave
black rows below them (16:9 in a square input) ONNX Runtime skips those rows in the early layers
(kifaru.detection.banded), which gives the same outputs in less time.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
from PIL import Image

from kifaru.models.registry import MEGADETECTOR_LITE, ModelEntry
from kifaru.models.weights import resolve_weights
from kifaru.runtime.choice import AUTO, DETECTOR_RUNTIME_ENV, RUNTIMES, choose_runtime, requested_runtime, runtime_name
from kifaru.runtime.device import check_device, usable_cores

if TYPE_CHECKING:
    from kifaru.detection.onnx_networks import OnnxNetworks

log = logging.getLogger(__name__)

__all__ = ["RUNTIMES", "FrameDetections", "MegadetectorLite", "export_before_workers", "load_megadetector_lite"]
# Frames per network call on the CPU (larger batches stop paying off: cache pressure). On the CPU,
# each core runs its own calls single-threaded: on 2 cores that is ~15% faster than one call on
# two threads, whose threads wait for each other at every layer.
CPU_BATCH = 4
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

    def score_at(self, confidence: float) -> float:
        """The frame's score as a detector run at ``confidence`` gives it: its highest detection
        score if that reaches ``confidence``, else 0 (boxes kept below it do not count)."""
        score = self.score
        return score if score >= confidence else 0.0

    def above(self, threshold: float) -> "FrameDetections":
        """Only the detections scoring at least ``threshold``."""
        keep = self.scores >= threshold
        return FrameDetections(self.boxes[keep], self.scores[keep])

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
        self, weights: Path, device: str = "cpu", runtime: str = AUTO, weights_sha256: Optional[str] = None
    ) -> None:
        """``runtime``: one of RUNTIMES ("auto": ONNX Runtime on the CPU where it works, else
        PyTorch; "torch" is "pytorch"), ConfigError otherwise; the environment is not read here
        (see :func:`load_megadetector_lite`). ``weights_sha256``: the file's sha256 when already
        known (it names the ONNX export)."""
        requested = runtime_name(runtime)
        self.weights = Path(weights)
        self.device = device
        self._torch_model: Any = None
        self._torch_lock = threading.Lock()
        self._onnx: Optional[OnnxNetworks] = None
        self._pool = None

        def load_onnx() -> None:
            from kifaru.detection.onnx_networks import OnnxNetworks

            self._onnx = OnnxNetworks.load(self.torch_model, self.weights, weights_sha256)

        self.runtime_choice = choose_runtime(requested, device, prepare=load_onnx)
        self.runtime = self.runtime_choice.runtime  # "onnxruntime" or "pytorch"
        if self.runtime_choice.fallback_reason:
            log.warning("ONNX Runtime cannot run the detector (%s); using PyTorch", self.runtime_choice.fallback_reason)
        if self._onnx is None:
            self.torch_model()  # a damaged file fails here, not at the first frame
        else:
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
    when installed, else PyTorch; env ``KIFARU_DETECTOR_RUNTIME`` (auto, onnxruntime, pytorch
    or torch) overrides "auto". A device that is not here is a ConfigError, before any weights
    are fetched.
    """
    device = check_device(device, "megadetector_lite_config.device")
    runtime = requested_runtime(DETECTOR_RUNTIME_ENV, runtime)
    path = resolve_weights(entry, weights)
    # resolve_weights checked the file against the registry: its sha256 is the entry's.
    return _load(path.resolve(), device, runtime, entry.weights_sha256)


def export_before_workers(weights: Path, weights_sha256: str, device: str) -> None:
    """Make the full network's ONNX export once, before worker processes that each load the
    detector start (see kifaru.detection.onnx_networks.export_before_workers)."""
    from kifaru.detection import onnx_networks

    onnx_networks.export_before_workers(weights, weights_sha256, device)
