"""How fast frame loading with MegadetectorLite can be on this machine: the CPU work it needs.

    python benchmarks/detector_floor.py [--clips bench-out/clips] [--zamba-seconds 19.98 22.59 20.21]

For each 15 s trail-camera clip and the time_distributed defaults (crop 50, fps 4: 60 candidate
frames, all scored by the detector, as zamba's selection needs every score), measures the parts of
kifaru's loading one at a time, single-threaded:

- decoding every frame up to the last candidate (PyAV, one thread) and converting the candidates to RGB;
- fitting each candidate to the detector's 640x640 input (PIL bicubic, as zamba: the scores depend on it);
- resizing each candidate for the model (cv2 area, as zamba);
- the network: 60 frames in ONNX Runtime, one single-threaded call per core in parallel (the way
  the detector runs), banded as the detector runs them; reported as core-seconds, and again with
  the full network (no banding) for comparison.

The floor is the sum of those core-seconds divided by the cores: the loading time if the two
cores never waited and nothing else ran. With ``--zamba-seconds`` (zamba's loading time per clip,
from bench_detector.py's run), prints the largest speed-up that floor allows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np

from kifaru.detection.megadetector_lite import fit_to_input, load_megadetector_lite, to_batch
from kifaru.video.transform import resize_for_model

CLIPS = ("trailcam_720p_h264.mp4", "trailcam_1080p_h264.mp4", "trailcam_720p_mjpeg.avi")
CROP, FPS, MODEL_SIZE = 50, 4, (240, 426)


def timed(function, repeat: int = 3):
    """(median seconds, last result) of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def decode_candidates(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        step = float(stream.average_rate) / FPS
        wanted = {round(k * step) for k in range(int(stream.frames / step))}
        frames = []
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                frames.append(frame.to_ndarray(format="rgb24")[:-CROP])
            if index >= max(wanted):
                break
    return frames


def network_core_seconds(detector, fitted: list[np.ndarray], cores: int, banded: bool = True) -> float:
    """Core-seconds the network takes for these frames, run as the detector runs it."""
    rows = max(image.shape[0] for image in fitted) if banded else None
    batches = [to_batch([image], 640, 640) for image in fitted]
    pool = ThreadPoolExecutor(cores)
    run = lambda: list(pool.map(lambda batch: detector.raw_outputs(batch, rows), batches))  # noqa: E731
    run()  # the banded network for this height is made on first use
    seconds, _ = timed(run)
    return seconds * cores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, default=Path("bench-out/clips"))
    parser.add_argument("--zamba-seconds", type=float, nargs=len(CLIPS), help="zamba's loading time per clip")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    detector = load_megadetector_lite(device="cpu")
    print(f"{cores} cores; detector {detector}", file=sys.stderr)
    print("| clip | decode | fit (PIL) | resize for model | network | total core-s | floor s | max speed-up | network unbanded |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    floors = []
    for k, name in enumerate(CLIPS):
        decode, frames = timed(lambda: decode_candidates(args.clips / name))
        fit, fitted = timed(lambda: [fit_to_input(frame, 640, 640) for frame in frames])
        resize, _ = timed(lambda: [resize_for_model(frame, MODEL_SIZE) for frame in frames])
        network = network_core_seconds(detector, fitted, cores)
        unbanded = network_core_seconds(detector, fitted, cores, banded=False)
        total = decode + fit + resize + network
        floors.append(total / cores)
        best = f"{args.zamba_seconds[k] / floors[-1]:.2f}x" if args.zamba_seconds else "-"
        print(f"| {name} ({len(frames)} frames) | {decode:.2f} | {fit:.2f} | {resize:.2f} | {network:.2f} | {total:.2f} | {floors[-1]:.2f} | {best} | {unbanded:.2f} |")
    best = f"{sum(args.zamba_seconds) / sum(floors):.2f}x" if args.zamba_seconds else "-"
    print(f"| **total** | | | | | | **{sum(floors):.2f}** | **{best}** | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
