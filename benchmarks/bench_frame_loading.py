"""Frame loading speed: kifaru against zamba 2.7.2's loader, in the same run, on the same clips.

    python benchmarks/bench_frame_loading.py [--clips DIR] [--repeat 3] [--zamba-python PATH]

Makes the 15 s trail-camera clips if needed (benchmarks/make_trailcam_clips.py), then times, for
each clip and each config, one call of each loader (best of --repeat, after a warm-up):

- kifaru: ``kifaru.load_video_frames`` in this process;
- zamba: ``zamba.data.video.load_video_frames`` in zamba's own venv (benchmarks/zamba_frames.py;
  the per-call time is measured inside that process, so its start-up is not counted);
- the decode floor: decoding every frame with PyAV, threaded, converting none.

Prints a markdown table and the total ratio, and checks that both loaders return the same shape.
No frame cache is used (VIDEO_CACHE_DIR is cleared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
CONFIGS = {
    "time_distributed defaults, no detector": {
        "crop_bottom_pixels": 50,
        "fps": 4,
        "total_frames": 16,
        "model_input_height": 240,
        "model_input_width": 426,
    },
    "evenly_sample 16": {
        "total_frames": 16,
        "evenly_sample_total_frames": True,
        "model_input_height": 240,
        "model_input_width": 426,
    },
    "early_bias": {"early_bias": True, "model_input_height": 240, "model_input_width": 426},
}
CLIPS = ("trailcam_720p_h264.mp4", "trailcam_1080p_h264.mp4", "trailcam_720p_mjpeg.avi")


def best_of(repeat: int, call) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def decode_floor(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass
    return 0.0


def time_zamba(zamba_python: str, config: dict, clips: list[Path], repeat: int) -> tuple[list[float], list[tuple]]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "zamba.npz"
        command = [zamba_python, str(HERE / "zamba_frames.py"), "--config", json.dumps(config),
                   "--out", str(out), "--repeat", str(repeat + 1), *map(str, clips)]
        subprocess.run(command, check=True, env={**os.environ, "VIDEO_CACHE_DIR": ""})
        with np.load(out) as result:
            errors = [str(result[f"error_{i}"]) for i in range(len(clips))]
            if any(errors):
                raise RuntimeError(f"zamba failed: {errors}")
            seconds = [float(result[f"seconds_{i}"]) for i in range(len(clips))]
            shapes = [tuple(result[f"frames_{i}"].shape) for i in range(len(clips))]
    return seconds, shapes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=HERE.parent / "bench-out" / "clips")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--zamba-python",
        default=os.environ.get("ZAMBA_PYTHON", str(Path.home() / ".cache/kifaru-bench/zamba-venv/bin/python")),
        help="python of a venv with zamba 2.7.2 (make one with benchmarks/zamba_setup.sh)",
    )
    args = parser.parse_args()
    os.environ["VIDEO_CACHE_DIR"] = ""

    subprocess.run([sys.executable, str(HERE / "make_trailcam_clips.py"), str(args.clips)], check=True)
    clips = [args.clips / name for name in CLIPS]

    import kifaru

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})")
    floors = {clip.name: best_of(args.repeat, lambda: decode_floor(clip)) for clip in clips}
    rows, total_kifaru, total_zamba = [], 0.0, 0.0
    for name, config in CONFIGS.items():
        zamba_seconds, zamba_shapes = time_zamba(args.zamba_python, config, clips, args.repeat)
        for clip, zamba_time, zamba_shape in zip(clips, zamba_seconds, zamba_shapes):
            frames = kifaru.load_video_frames(clip, **config)  # warm-up, and the shape check
            if tuple(frames.shape) != zamba_shape:
                raise RuntimeError(f"{clip.name} {name}: kifaru {frames.shape} vs zamba {zamba_shape}")
            kifaru_time = best_of(args.repeat, lambda: kifaru.load_video_frames(clip, **config))
            total_kifaru += kifaru_time
            total_zamba += zamba_time
            rows.append((name, clip.name, zamba_time, kifaru_time, floors[clip.name]))

    print("\n| config | clip | zamba s | kifaru s | speed-up | decode-all floor s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, clip, zamba_time, kifaru_time, floor in rows:
        print(f"| {name} | {clip} | {zamba_time:.3f} | {kifaru_time:.3f} | {zamba_time / kifaru_time:.1f}x | {floor:.3f} |")
    print(f"| **total** | | **{total_zamba:.2f}** | **{total_kifaru:.2f}** | **{total_zamba / total_kifaru:.2f}x** | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
