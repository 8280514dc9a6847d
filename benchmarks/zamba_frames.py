"""Run zamba 2.7.2's own video loader and save what it returns.

RUNS UNDER ZAMBA'S VENV, not kifaru's: it imports zamba (and, through it, torch). Create that venv
with benchmarks/zamba_setup.sh, then:

    $ZAMBA_PYTHON benchmarks/zamba_frames.py --config '{"fps": 4}' --out out.npz a.mp4 b.AVI

For each video it calls ``zamba.data.video.load_video_frames(path, config=VideoLoaderConfig(**cfg))``
with a fresh config per call (zamba mutates the config), and writes one npz with, for video i:

    frames_{i}   uint8 array (T, H, W, 3) as zamba returned it (zamba's int64 all-zeros fallback is
                 cast to uint8); empty (0,) uint8 array on error or with --time-only
    error_{i}    '' or "ExceptionType: message"
    seconds_{i}  wall time of one call (best of --repeat)

plus ``paths`` (the paths as given), ``config`` (the JSON string) and ``zamba_version``.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="VideoLoaderConfig kwargs as a JSON object")
    parser.add_argument("--out", required=True, help="output .npz")
    parser.add_argument("--repeat", type=int, default=1, help="calls per video; best time is kept")
    parser.add_argument("--time-only", action="store_true", help="do not store the frames")
    parser.add_argument("videos", nargs="+")
    args = parser.parse_args(argv)

    from importlib.metadata import version

    from loguru import logger
    from zamba.data.video import VideoLoaderConfig, load_video_frames

    logger.remove()  # zamba logs every clip/duplicate at INFO; keep only warnings
    logger.add(sys.stderr, level="WARNING")

    cfg = json.loads(args.config)
    result = {
        "paths": np.array(args.videos, dtype=str),
        "config": np.array(args.config),
        "zamba_version": np.array(version("zamba")),
    }
    for i, path in enumerate(args.videos):
        frames, error, best = None, "", float("inf")
        for _ in range(max(1, args.repeat)):
            start = time.perf_counter()
            try:
                frames = load_video_frames(path, config=VideoLoaderConfig(**cfg))
            except Exception as exc:  # record zamba's failure, it is reference behaviour too
                error = f"{type(exc).__name__}: {exc}"
            best = min(best, time.perf_counter() - start)
            if error:
                break
        shape = "error" if error else tuple(np.shape(frames))
        if frames is None or error or args.time_only:
            frames = np.zeros((0,), np.uint8)
        result[f"frames_{i}"] = np.asarray(frames).astype(np.uint8, copy=False)
        result[f"error_{i}"] = np.array(error)
        result[f"seconds_{i}"] = np.array(best)
        print(f"[{i}] {best:.3f}s {shape} {path}", file=sys.stderr)

    np.savez(args.out, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
