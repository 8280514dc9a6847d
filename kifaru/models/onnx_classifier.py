"""TimeDistributedEfficientNet in ONNX Runtime on the CPU: faster than PyTorch here, and without it.

On this project's 2-core CPU the EfficientNet takes 3.2 s per 16-frame clip in ONNX Runtime
against 6.9 s in PyTorch as zamba runs it (``benchmarks/classifier_runtime.py``). The process that predicts then never imports PyTorch
either, which keeps about 500 MB out of memory.

The network is exported once per checkpoint (by its sha256) into the model cache, as two graphs:
the per-frame EfficientNet and the head that joins the frames. The export runs in a child
process, so that PyTorch is loaded there and not here, and the files are kept only if the
exported network's probabilities agree with PyTorch's on a probe clip.
"""

from __future__ import annotations

import io
import logging
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from kifaru.device import usable_cores
from kifaru.files import atomic_write
from kifaru.memory import release_freed_memory
from kifaru.models.checkpoint_info import VideoModelCheckpoint
from kifaru.models.normalization import IMAGENET_MEAN, IMAGENET_STD
from kifaru.notices import notify
from kifaru.progress import format_duration
from kifaru.processes import spawn_context

log = logging.getLogger(__name__)

MODEL_CLASS = "TimeDistributedEfficientNet"
# Frames per call: each core runs its own single-threaded calls (as for the detector); a few
# frames per call keep the activations small (memory) at no cost in speed.
FRAMES_PER_CALL = 4
_MAX_PROBABILITY_DIFF = 1e-4
_PROBE_SIZE = (96, 160)


def onnx_stem(checkpoint_sha256: str, cache_dir: Optional[Path] = None) -> Path:
    from kifaru.models.weights import model_cache_dir

    return model_cache_dir(cache_dir) / "onnx" / f"time_distributed-{checkpoint_sha256[:16]}"


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
        import onnxruntime

        self.species = list(checkpoint.species)
        self.model_class = checkpoint.model_class
        self.num_frames = int(checkpoint.hyper_parameters.get("num_frames", 16))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        frames_path, head_path = _paths(stem)
        self._frames = onnxruntime.InferenceSession(str(frames_path), options, providers=["CPUExecutionProvider"])
        self._head = onnxruntime.InferenceSession(str(head_path), options, providers=["CPUExecutionProvider"])
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
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def load_onnx_time_distributed(
    checkpoint: VideoModelCheckpoint, checkpoint_sha256: str, cache_dir: Optional[Path] = None
) -> OnnxTimeDistributed:
    """The ONNX Runtime classifier for this checkpoint, exported first if not in the cache."""
    stem = onnx_stem(checkpoint_sha256, cache_dir)
    if not all(path.is_file() for path in _paths(stem)):
        notify(f"{checkpoint.path.name}: exporting the network to ONNX Runtime (once per checkpoint, up to a minute or two)")
        started = time.monotonic()
        export_in_child_process(checkpoint.path, stem)
        notify(f"{checkpoint.path.name}: exported in {format_duration(time.monotonic() - started)}")
    return OnnxTimeDistributed(checkpoint, stem)


def export_in_child_process(checkpoint_path: Path, stem: Path) -> None:
    """Export (and check) in a spawned process; RuntimeError with the child's reason on failure."""
    context = spawn_context()
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_export_checked, args=(str(checkpoint_path), str(stem), send), daemon=True)
    child.start()
    send.close()
    try:
        problem = receive.recv()
    except EOFError:
        problem = "the export process ended without an answer"
    child.join()
    if problem is not None or child.exitcode != 0:
        raise RuntimeError(problem or f"the export process exited with code {child.exitcode}")


def _export_checked(checkpoint_path: str, stem: str, send: Any) -> None:
    try:
        export_checked(Path(checkpoint_path), Path(stem))
    except Exception as error:  # sent to the parent, which falls back to PyTorch
        send.send(f"{type(error).__name__}: {error}")
    else:
        send.send(None)
    finally:
        send.close()


def export_checked(checkpoint_path: Path, stem: Path) -> None:
    """Export the checkpoint's network as the two ONNX graphs and keep them only if they agree
    with PyTorch on a probe clip."""
    import onnxruntime
    import torch

    from kifaru.models.checkpoint import model_from_checkpoint, read_checkpoint
    from kifaru.models.time_distributed import frames_to_input as torch_frames_to_input

    checkpoint = read_checkpoint(checkpoint_path)
    if checkpoint.model_class != MODEL_CLASS:
        raise ValueError(f"{checkpoint_path} holds a {checkpoint.model_class}, not a {MODEL_CLASS}")
    model = model_from_checkpoint(checkpoint)
    probe = np.random.default_rng(0).integers(0, 256, (1, model.num_frames, *_PROBE_SIZE, 3), dtype=np.uint8)
    with torch.inference_mode():
        expected = torch.sigmoid(model(torch_frames_to_input(torch.from_numpy(probe)))).numpy()
    frames_graph, head_graph = io.BytesIO(), io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter announces its own deprecation
        frames_example = torch.from_numpy(frames_to_input(probe[:, :2]))
        _export(model.base.module, frames_example, "frames", "features", {0: "frames", 2: "height", 3: "width"}, frames_graph)
        features_example = torch.zeros((1, model.num_frames, model.classifier[0].in_features))
        _export(model.classifier, features_example, "features", "logits", {0: "clips"}, head_graph)

    options = onnxruntime.SessionOptions()
    frames_session = onnxruntime.InferenceSession(frames_graph.getvalue(), options, providers=["CPUExecutionProvider"])
    head_session = onnxruntime.InferenceSession(head_graph.getvalue(), options, providers=["CPUExecutionProvider"])
    got_features = frames_session.run(None, {"frames": frames_to_input(probe)})[0].reshape(1, model.num_frames, -1)
    got = 1.0 / (1.0 + np.exp(-head_session.run(None, {"features": got_features})[0]))
    difference = float(np.abs(got - expected).max())
    if difference > _MAX_PROBABILITY_DIFF:
        raise RuntimeError(f"the exported network's probabilities differ from PyTorch's by {difference:.2g}")
    frames_path, head_path = _paths(stem)
    for path, graph in ((head_path, head_graph), (frames_path, frames_graph)):  # frames last: it marks completion
        with atomic_write(path) as out:
            out.write(graph.getvalue())


def _export(module: Any, example: Any, input_name: str, output_name: str, dynamic: dict, out: io.BytesIO) -> None:
    import torch

    torch.onnx.export(
        module.eval(),
        (example,),
        out,
        input_names=[input_name],
        output_names=[output_name],
        dynamic_axes={input_name: dynamic},
        opset_version=17,
        dynamo=False,
    )
