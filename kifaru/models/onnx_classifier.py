"""TimeDistributedEfficientNet in ONNX Runtime on the CPU: faster than PyTorch here, and without it.

On this project's 2-core CPU the EfficientNet takes 3.2 s per 16-frame clip in ONNX Runtime
against 6.9 s in PyTorch as zamba runs it (``benchmarks/classifier_runtime.py``). The process that predicts then never imports PyTorch
either, which keeps about 500 MB out of memory.

The network is exported once per checkpoint (by its sha256) into the model cache, as two graphs:
the per-frame EfficientNet and the head that joins the frames. The export runs in a child
process, so that PyTorch is loaded there and not here, and the files are kept only if the
exported network's logits agree with PyTorch's on a natural-looking probe clip (see
:func:`check_export`); kifaru.runtime.onnx does the exporting, checking and caching, as for the
detector.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from kifaru.models.checkpoint_info import VideoModelCheckpoint
from kifaru.models.model_classes import TIME_DISTRIBUTED_EFFICIENTNET
from kifaru.models.normalization import IMAGENET_MEAN, IMAGENET_STD
from kifaru.notices import notify
from kifaru.progress import format_duration
from kifaru.runtime import onnx
from kifaru.runtime.device import usable_cores
from kifaru.runtime.memory import release_freed_memory

log = logging.getLogger(__name__)

# The one model class this module exports (SlowFast runs in PyTorch).
MODEL_CLASS = TIME_DISTRIBUTED_EFFICIENTNET.name
# Frames per call: each core runs its own single-threaded calls (as for the detector); a few
# frames per call keep the activations small (memory) at no cost in speed.
FRAMES_PER_CALL = 4
# The export's example frames and the check's probe differ in size: the check also shows that the
# graph takes any height and width.
_EXAMPLE_SIZE = (96, 160)
_PROBE_SIZE = (112, 192)
# Allowed |ONNX - PyTorch| logit difference, relative to the logits' scale max(1, max |logit|).
# float32 rounds each product and sum to eps = 1.2e-7 (relative); a convolution or linear layer
# summing n terms errs by about eps * sqrt(n) (n up to ~1e4 here: ~1e-5), and the ~100 layers of
# EfficientNetV2-M add their errors like a random walk (x sqrt(100) = 10): ~1e-4 of the scale, an
# upper estimate. Measured on natural-looking frames with BatchNorm-calibrated random weights:
# 1e-5 to 8e-5 of the scale (features and logits). 1e-3 is ten times the estimate; a wrong export
# (one weight changed, frames normalised differently) moves the logits by far more (tests).
# Uniform pixel noise is no probe: trained BatchNorm statistics do not fit it, the logits reach
# ~1e3 and the network amplifies rounding until PyTorch and ONNX Runtime disagree by the logits'
# own size, although the two graphs are the same.
_MAX_RELATIVE_LOGIT_DIFF = 1e-3


def onnx_stem(checkpoint_sha256: str, cache_dir: Optional[Path] = None) -> Path:
    """Where the checkpoint's two graphs go (without their suffixes), in the model cache."""
    return onnx.export_stem("time_distributed", checkpoint_sha256, cache_dir)


def _paths(stem: Path) -> tuple[Path, Path]:
    return stem.with_name(stem.name + "-frames.onnx"), stem.with_name(stem.name + "-head.onnx")


def frames_to_input(clips: np.ndarray) -> np.ndarray:
    """uint8 clips (B, T, H, W, 3) -> (B*T, 3, H, W) float32, as ``time_distributed.frames_to_input``."""
    x = clips.reshape(-1, *clips.shape[-3:]).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(IMAGENET_STD, dtype=np.float32).reshape(3, 1, 1)
    return np.ascontiguousarray((x - mean) / std)


class OnnxTimeDistributed:
    """Predicts like :class:`kifaru.models.runner.VideoClassifier` for TimeDistributedEfficientNet."""

    device = "cpu"

    def __init__(self, checkpoint: VideoModelCheckpoint, stem: Path) -> None:
        self.species = list(checkpoint.species)
        self.model_class = checkpoint.model_class
        self.num_frames = int(checkpoint.hyper_parameters.get("num_frames", 16))
        frames_path, head_path = _paths(stem)
        self._frames = onnx.session(frames_path, single_threaded=True)
        self._head = onnx.session(head_path, single_threaded=True)
        release_freed_memory()  # building the sessions leaves ~250 MB of freed buffers behind
        self._pool = ThreadPoolExecutor(usable_cores(), thread_name_prefix="classifier")

    def predict_proba(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        stacked = np.stack(clips)
        batch, frames = stacked.shape[:2]
        if frames != self.num_frames:
            raise ValueError(f"this model takes {self.num_frames} frames per video, not {frames}")
        x = frames_to_input(stacked)
        starts = range(0, len(x), FRAMES_PER_CALL)
        parts = self._pool.map(lambda s: self._frames.run(None, {"frames": x[s : s + FRAMES_PER_CALL]})[0], starts)
        features = np.concatenate(list(parts)).reshape(batch, frames, -1)
        logits = self._head.run(None, {"features": features})[0]
        return sigmoid(logits)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """float32 1 / (1 + exp(-x)), without overflow warnings for very negative logits."""
    return np.exp(-np.logaddexp(np.float32(0.0), -logits.astype(np.float32))).astype(np.float32)


def probe_clip(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic clip of natural-looking uint8 frames (T, H, W, 3): a sky-to-ground gradient,
    smooth coloured texture, a dark shape that moves, sensor noise. A trained network's BatchNorm
    statistics fit such frames, as they fit real ones (and not uniform noise)."""
    import cv2

    rng = np.random.default_rng(seed)
    rows = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None, None]
    sky, ground = rng.uniform(150, 220, 3), rng.uniform(40, 110, 3)
    scene = rows * sky + (1 - rows) * ground
    # Texture mostly in brightness (leaves, rocks), a little in colour.
    coarse = rng.normal(0, 25, (6, 10, 1)) + rng.normal(0, 6, (6, 10, 3))
    texture = cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    clip = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        centre_y, centre_x = height * 0.6, width * (0.2 + 0.6 * t / max(frames - 1, 1))
        shape = np.exp(-(((yy - centre_y) / (height / 8)) ** 2 + ((xx - centre_x) / (width / 6)) ** 2))[..., None]
        frame = (scene + texture) * rng.uniform(0.8, 1.1) * (1 - 0.6 * shape) + rng.normal(0, 3, (height, width, 3))
        clip[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return clip


def load_onnx_time_distributed(
    checkpoint: VideoModelCheckpoint, checkpoint_sha256: str, cache_dir: Optional[Path] = None
) -> OnnxTimeDistributed:
    """The ONNX Runtime classifier for this checkpoint, exported first if not in the cache."""
    return OnnxTimeDistributed(checkpoint, ensure_export(checkpoint, checkpoint_sha256, cache_dir))


def ensure_export(checkpoint: VideoModelCheckpoint, checkpoint_sha256: str, cache_dir: Optional[Path] = None) -> Path:
    """The stem of the checkpoint's checked ONNX export in the cache, exported now if missing."""
    stem = onnx_stem(checkpoint_sha256, cache_dir)
    if not onnx.is_exported(_paths(stem)):
        notify(f"{checkpoint.path.name}: exporting the network to ONNX Runtime (once per checkpoint, up to a minute or two)")
        started = time.monotonic()
        export_in_child_process(checkpoint.path, stem)
        notify(f"{checkpoint.path.name}: exported in {format_duration(time.monotonic() - started)}")
    return stem


def export_in_child_process(checkpoint_path: Path, stem: Path) -> None:
    """Export (and check) in a spawned process; RuntimeError with the child's reason on failure."""
    problem = onnx.export_in_child(export_checked, Path(checkpoint_path), Path(stem))
    if problem is not None:
        raise RuntimeError(problem)


def export_checked(checkpoint_path: Path, stem: Path) -> None:
    """Export the checkpoint's network as the two ONNX graphs and keep them only if
    :func:`check_export` passes."""
    from kifaru.models.checkpoint import model_from_checkpoint, read_checkpoint

    checkpoint = read_checkpoint(checkpoint_path)
    if checkpoint.model_class != MODEL_CLASS:
        raise ValueError(f"{checkpoint_path} holds a {checkpoint.model_class}, not a {MODEL_CLASS}")
    model = model_from_checkpoint(checkpoint)
    onnx.export_checked(list(zip(_paths(stem), _graphs(model))), _verification(model))


def _graphs(model: Any) -> tuple[onnx.Graph, onnx.Graph]:
    """A TimeDistributedEfficientNet as two graphs: the per-frame network (any number of frames,
    any height and width), and the head (any number of clips)."""
    frames_example = frames_to_input(probe_clip(2, *_EXAMPLE_SIZE)[None])
    features_example = np.zeros((1, model.num_frames, model.classifier[0].in_features), np.float32)
    return (
        onnx.Graph(model.base.module, frames_example, "frames", "features", {0: "frames", 2: "height", 3: "width"}),
        onnx.Graph(model.classifier, features_example, "features", "logits", {0: "clips"}),
    )


def export_graphs(model: Any) -> tuple[bytes, bytes]:
    """A TimeDistributedEfficientNet as two ONNX graphs, unchecked: the per-frame network, the head."""
    frames_graph, head_graph = (onnx.export_graph(graph) for graph in _graphs(model))
    return frames_graph, head_graph


def check_export(model: Any, frames_graph: bytes, head_graph: bytes) -> None:
    """OnnxExportError (a RuntimeError) unless the two graphs give the PyTorch ``model``'s logits
    on the probe clip, with the input transform the ONNX classifier uses, to within float32 rounding."""
    onnx.verify([onnx.session(frames_graph), onnx.session(head_graph)], _verification(model))


def _verification(model: Any) -> onnx.Verification:
    """The check of an export: logits on a natural-looking probe clip of _PROBE_SIZE, compared
    relative to their scale (_MAX_RELATIVE_LOGIT_DIFF)."""
    import torch

    from kifaru.models.time_distributed import frames_to_input as torch_frames_to_input

    def expected(probe: np.ndarray) -> np.ndarray:
        return model.eval()(torch_frames_to_input(torch.from_numpy(probe))).double().numpy()

    def got(sessions: Sequence[Any], probe: np.ndarray) -> np.ndarray:
        frames_session, head_session = sessions
        features = frames_session.run(None, {"frames": frames_to_input(probe)})[0].reshape(1, model.num_frames, -1)
        return head_session.run(None, {"features": features})[0].astype(np.float64)

    return onnx.Verification(probe_clip(model.num_frames, *_PROBE_SIZE)[None], expected, got, _compare_logits)


def _compare_logits(got: np.ndarray, expected: np.ndarray) -> Optional[str]:
    if not np.isfinite(expected).all():
        return "PyTorch's own logits on a natural-looking probe clip are not finite (inf or nan): the checkpoint's weights are broken"
    if got.shape != expected.shape:
        return f"the exported network gives logits of shape {got.shape}, PyTorch {expected.shape}"
    if not np.isfinite(got).all():
        return "the exported network's logits on the probe clip are not finite (inf or nan) where PyTorch's are"
    scale = max(1.0, float(np.abs(expected).max()))
    difference = float(np.abs(got - expected).max())
    if difference > _MAX_RELATIVE_LOGIT_DIFF * scale:
        return (
            f"the exported network's logits differ from PyTorch's by {difference:.3g} on a probe clip "
            f"(allowed: {_MAX_RELATIVE_LOGIT_DIFF:g} x {scale:.3g}, float32 rounding)"
        )
    return None
