"""Peak memory of the PyTorch classifier predicting a batch, with and without frames in chunks.

    .venv/bin/python benchmarks/classifier_memory.py [--checkpoint CKPT] [--clips 2] [--chunks 0 8 4]

Each case runs in its own process: load the checkpoint into kifaru's VideoClassifier (PyTorch,
channels-last on the CPU), reset the process's peak RSS (Linux: /proc/self/clear_refs), predict one
batch of ``--clips`` natural-looking 16-frame clips at 240x426 (predict's default batch and zamba's
input size), and read the peak again (VmHWM). ``--chunks``: frames per backbone call,
kifaru.models.time_distributed.INFERENCE_FRAMES_PER_CALL; 0 means every frame in one call (the
unchunked path). Probabilities of every case are compared with the first's.

The checkpoint defaults to bench-out/zamba_models/time_distributed_random.ckpt, written first if
missing (EfficientNetV2-M with seeded random weights: tests/models/random_checkpoint.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = ROOT / "bench-out" / "zamba_models" / "time_distributed_random.ckpt"


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(checkpoint: Path, clips: int, frames_per_call: int) -> dict:
    """In this process: RSS after loading, peak RSS while predicting, seconds, probabilities."""
    import numpy as np
    import torch

    from kifaru.models import time_distributed
    from kifaru.models.onnx_classifier import probe_clip
    from kifaru.models.runner import VideoClassifier

    time_distributed.INFERENCE_FRAMES_PER_CALL = frames_per_call or 10**9
    batch = [probe_clip(16, 240, 426, seed=seed) for seed in range(1, clips + 1)]
    classifier = VideoClassifier.from_file(checkpoint)
    loaded_peak_kb = _status_kb("VmHWM")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the peak RSS starts again from the current RSS
    before_kb = _status_kb("VmRSS")
    start = time.perf_counter()
    probabilities = classifier.predict_proba(batch)
    seconds = time.perf_counter() - start
    return {
        "frames_per_call": frames_per_call,
        "load_peak_mb": loaded_peak_kb / 1024,
        "rss_before_predict_mb": before_kb / 1024,
        "predict_peak_mb": _status_kb("VmHWM") / 1024,
        "seconds": seconds,
        "torch_threads": torch.get_num_threads(),
        "probabilities": np.asarray(probabilities).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--chunks", type=int, nargs="+", default=[0, 8])
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)  # internal: one case, in this process
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.checkpoint, args.clips, args.measure)))
        return
    if not args.checkpoint.is_file():
        sys.path.insert(0, str(ROOT))
        from kifaru.models.registry import TIME_DISTRIBUTED
        from tests.models.random_checkpoint import write_random_time_distributed

        args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        write_random_time_distributed(args.checkpoint, list(TIME_DISTRIBUTED.species), seed=0)
    results = []
    for chunk in args.chunks:
        command = [sys.executable, __file__, "--checkpoint", str(args.checkpoint), "--clips", str(args.clips), "--measure", str(chunk)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    import numpy as np

    reference = np.asarray(results[0]["probabilities"])
    print(f"{args.clips} clips x 16 frames at 240x426, EfficientNetV2-M (PyTorch, {results[0]['torch_threads']} threads)\n")
    print("| frames per backbone call | peak RSS loading, MB | RSS before predicting, MB | peak RSS predicting, MB | s | max probability difference |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for result in results:
        difference = float(np.abs(np.asarray(result["probabilities"]) - reference).max())
        label = result["frames_per_call"] or f"all ({16 * args.clips})"
        print(
            f"| {label} | {result['load_peak_mb']:.0f} | {result['rss_before_predict_mb']:.0f} | "
            f"{result['predict_peak_mb']:.0f} | {result['seconds']:.1f} | {difference:.1e} |"
        )


if __name__ == "__main__":
    main()
