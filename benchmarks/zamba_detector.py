"""Time zamba 2.7.2's MegadetectorLite (YOLOX-tiny) and its loader with it, on request.

RUNS UNDER ZAMBA'S VENV, not kifaru's: it imports zamba (and, through it, torch). Create that venv
with benchmarks/zamba_setup.sh; benchmarks/bench_detector.py starts this script for you:

    HF_HUB_OFFLINE=1 $ZAMBA_PYTHON benchmarks/zamba_detector.py

It stays up and answers requests, one JSON object a line on stdin, one JSON object a line on
stdout (anything else zamba prints goes to stderr), so that the benchmark can interleave zamba's
timed calls with kifaru's and a change in the machine's load hits both sides alike. Requests:

``{"op": "detector_load"}``
    ``MegadetectorLiteYoloX(config=MegadetectorLiteYoloXConfig(device="cpu"))``: torch.load of the
    checkpoint and the model build. The first call in the process is the cold load; a later one is
    what zamba's loader pays for every video. Keeps the detector for "detect".
``{"op": "detect", "frames": "frames.npz"}``
    Every (N, H, W, 3) uint8 RGB array in the npz (read once, then kept) through
    ``detect_video``, which includes zamba's preprocessing (``ImageOps.pad`` to 640x640) and
    postprocessing (YOLOX NMS). Reply: ``seconds`` (the whole pass), ``frames``, ``scores``
    ({array name: per-frame max detection score, 0.0 when nothing was found}).
``{"op": "load", "path": "clip.mp4", "config": {...}, "save": "frames.npy" or null}``
    ``zamba.data.video.load_video_frames(path, config=VideoLoaderConfig(**config))`` with a fresh
    config (zamba mutates it); with a MegadetectorLite config zamba builds a new detector for
    the video, which is timed as part of the call. Reply: ``seconds``, ``shape``; the frames are
    saved to ``save`` when given.
``{"op": "versions"}``
    zamba, torch, torch threads.

Every reply has ``"error"`` ('' or "ExceptionType: message"). The first line written is
``{"ready": true}`` once zamba is imported. EOF on stdin ends the process.
"""

import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402


class ZambaSide:
    def __init__(self):
        from loguru import logger

        logger.remove()  # zamba logs every clip at INFO; keep only warnings
        logger.add(sys.stderr, level="WARNING")
        self.detector = None
        self.frames = {}

    def versions(self) -> dict:
        from importlib.metadata import version

        import torch

        return {"zamba": version("zamba"), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}

    def detector_load(self) -> dict:
        from zamba.object_detection.yolox.megadetector_lite_yolox import (
            MegadetectorLiteYoloX,
            MegadetectorLiteYoloXConfig,
        )

        start = time.perf_counter()
        self.detector = MegadetectorLiteYoloX(config=MegadetectorLiteYoloXConfig(device="cpu"))
        return {"seconds": time.perf_counter() - start}

    def detect(self, frames: str) -> dict:
        if frames not in self.frames:
            with np.load(frames) as data:
                self.frames[frames] = {name: data[name] for name in data.files}
        arrays = self.frames[frames]
        start = time.perf_counter()
        found = {name: self.detector.detect_video(video_arr=arr) for name, arr in arrays.items()}
        seconds = time.perf_counter() - start
        scores = {
            name: [float(np.max(s)) if len(s) else 0.0 for _, s in detections] for name, detections in found.items()
        }
        return {"seconds": seconds, "frames": int(sum(len(a) for a in arrays.values())), "scores": scores}

    def load(self, path: str, config: dict, save=None) -> dict:
        from zamba.data.video import VideoLoaderConfig, load_video_frames

        start = time.perf_counter()
        frames = load_video_frames(path, config=VideoLoaderConfig(**config))
        seconds = time.perf_counter() - start
        frames = np.asarray(frames).astype(np.uint8, copy=False)
        if save:
            np.save(save, frames)
        return {"seconds": seconds, "shape": list(frames.shape)}


def serve(side, reply_to) -> None:
    """Answer JSON requests from stdin on ``reply_to`` until EOF."""
    reply_to.write(json.dumps({"ready": True}) + "\n")
    reply_to.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        op = request.pop("op")
        try:
            answer = {**getattr(side, op)(**request), "error": ""}
        except Exception as exc:  # report it; the benchmark decides
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        reply_to.write(json.dumps(answer) + "\n")
        reply_to.flush()


def main() -> int:
    reply_to = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr  # keep the reply channel clean of anything zamba prints
    os.dup2(sys.stderr.fileno(), 1)
    import zamba.data.video  # noqa: F401  imported before anything is timed

    serve(ZambaSide(), reply_to)
    return 0


if __name__ == "__main__":
    sys.exit(main())
