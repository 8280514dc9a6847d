"""How long TimeDistributedEfficientNet takes per 16-frame clip (240x426) on this CPU, by runtime.

    .venv/bin/python benchmarks/classifier_runtime.py [--checkpoint CKPT] [--repeat 3]

- PyTorch as zamba runs it (contiguous tensors, torch's default threads);
- PyTorch with channels-last tensors;
- ONNX Runtime as ``kifaru predict`` runs it (kifaru.models.onnx_classifier: one single-threaded
  call per core, 4 frames per call), from the export cached in the model cache (made first if
  missing; the export time is printed apart);
- fast mode's candidates (issue 18): PyTorch under bf16 autocast (channels-last), and ONNX
  Runtime with the frames graph's weights quantized to int8 (dynamic quantization: int8 weights,
  activations quantized per call; VNNI where the CPU has it).

Each figure is the best of --repeat calls on 2 clips (a batch, as predict's default batch_size
gives), divided by 2, after a warm-up call; the probabilities of every runtime are compared, on
natural-looking frames (onnx_classifier.probe_clip).
The checkpoint defaults to bench-out/zamba_models/time_distributed_random.ckpt.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from kifaru.models import onnx_classifier
from kifaru.models.checkpoint_info import read_checkpoint_info
from kifaru.models.download import sha256_of
from kifaru.models.runner import VideoClassifier

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import machine  # noqa: E402


def best_per_clip(predict, clips: list[np.ndarray], repeat: int) -> tuple[float, np.ndarray]:
    out = predict(clips)  # warm-up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = predict(clips)
        best = min(best, time.perf_counter() - start)
    return best / len(clips), out


def int8_row(checkpoint, sha: str, clips: list[np.ndarray], repeat: int, reference: np.ndarray) -> tuple[str, float, float]:
    """ONNX Runtime with the frames graph (EfficientNetV2-M on each frame) quantized to int8."""
    import shutil
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    stem = onnx_classifier.ensure_export(checkpoint, sha)
    frames_graph, head_graph = onnx_classifier._paths(stem)
    with tempfile.TemporaryDirectory() as folder:
        quantized = Path(folder) / stem.name
        frames_int8, head_copy = onnx_classifier._paths(quantized)
        quantize_dynamic(str(frames_graph), str(frames_int8), weight_type=QuantType.QInt8)
        shutil.copy(head_graph, head_copy)
        classifier = onnx_classifier.OnnxTimeDistributed(checkpoint, quantized)
        seconds, out = best_per_clip(classifier.predict_proba, clips, repeat)
    return ("ONNX Runtime, frames graph int8 (dynamic)", seconds, float(np.abs(out - reference).max()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "bench-out" / "zamba_models" / "time_distributed_random.ckpt")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    # Natural-looking frames, not uniform noise: on noise a trained network's BatchNorm statistics
    # do not fit, its logits explode, and even PyTorch's two memory layouts disagree (by 1.0 measured).
    clips = [onnx_classifier.probe_clip(16, 240, 426, seed=seed) for seed in (1, 2)]

    rows = []
    plain = VideoClassifier.from_file(args.checkpoint)
    plain.model = plain.model.to(memory_format=torch.contiguous_format)
    seconds, reference = best_per_clip(plain.predict_proba, clips, args.repeat)
    rows.append(("PyTorch, contiguous (as zamba)", seconds, 0.0))
    del plain
    channels_last = VideoClassifier.from_file(args.checkpoint)
    seconds, out = best_per_clip(channels_last.predict_proba, clips, args.repeat)
    rows.append(("PyTorch, channels-last", seconds, float(np.abs(out - reference).max())))
    del channels_last

    sha = sha256_of(args.checkpoint)
    start = time.perf_counter()
    classifier = onnx_classifier.load_onnx_time_distributed(read_checkpoint_info(args.checkpoint), sha)
    loaded = time.perf_counter() - start
    seconds, out = best_per_clip(classifier.predict_proba, clips, args.repeat)
    rows.append(("ONNX Runtime (kifaru predict)", seconds, float(np.abs(out - reference).max())))

    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = VideoClassifier.from_file(args.checkpoint)
        seconds, out = best_per_clip(bf16.predict_proba, clips, args.repeat)
    rows.append(("PyTorch, channels-last, bf16 autocast", seconds, float(np.abs(out - reference).max())))
    del bf16

    rows.append(int8_row(read_checkpoint_info(args.checkpoint), sha, clips, args.repeat, reference))

    print(json.dumps(machine()))
    print(f"ONNX Runtime classifier ready in {loaded:.1f} s (includes the one-time export when it was not cached)\n")
    print("| runtime | s per clip | vs zamba's way | max probability difference |")
    print("| --- | ---: | ---: | ---: |")
    for name, seconds, difference in rows:
        print(f"| {name} | {seconds:.2f} | {rows[0][1] / seconds:.2f}x | {difference:.1e} |")


if __name__ == "__main__":
    main()
