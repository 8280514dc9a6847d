"""MegadetectorLite speed: kifaru against zamba 2.7.2, in the same run, on the same frames and clips.

    python benchmarks/bench_detector.py [--repeat 3] [--zamba-python PATH] [--out bench-out/detector.json]
        [--clips DIR] [--parts detect load] [--frames-per-clip 24] [--load-clips NAME ...]

Makes the 15 s trail-camera clips if needed (benchmarks/make_trailcam_clips.py), then measures:

1. detector throughput (frames/s at 640x640): ``--frames-per-clip`` frames (default 24) decoded at
   fps 4 from the 1080p and the 720p H.264 clips after a 50 px bottom crop, saved once to an .npz
   that every side reads, through
   - zamba: ``MegadetectorLiteYoloX(config=MegadetectorLiteYoloXConfig(device="cpu")).detect_video``
     in zamba's venv (benchmarks/zamba_detector.py);
   - kifaru: ``load_megadetector_lite().detect(frames)`` with ONNX Runtime, and again with
     KIFARU_DETECTOR_RUNTIME=torch, each in its own process (the detector is cached per process).
   Each side's pre- and postprocessing (resize/pad, NMS) is timed, model loading is not: it is
   reported apart. For kifaru's ONNX Runtime, "first load" is a load with an empty ONNX cache (a
   temporary MODEL_CACHE_DIR), so it includes the one-time export and its check against PyTorch;
   "warm load" is a load with the export cached. For zamba and kifaru-torch, "first load" is the
   first construction in the process and "warm load" a second one (the one zamba's loader pays
   per video). One warm-up pass, then the median of --repeat passes. The detections are checked:
   per frame, kifaru's max score must be within 0.02 of zamba's.
2. loading with the detector: ``load_video_frames`` with the time_distributed default config (with
   MegadetectorLite) on each of the three clips. zamba's time includes the MegadetectorLiteYoloX it
   builds for every video; kifaru's detector is loaded once beforehand, as in a run over many
   clips. One warm-up call per clip, then the median of --repeat calls. Also counts how many of the
   16 selected frames are the same source frames on both sides (each of zamba's frames is matched
   to the nearest of kifaru's fps-4 candidate frames by mean absolute difference).

Each side runs in a helper process that stays up (zamba's: benchmarks/zamba_detector.py in
zamba's venv; kifaru's detector: this script with --serve-kifaru), and the timed calls of all
sides are interleaved round by round, so that a change in the machine's load (on a small shared
machine) hits every side alike rather than whichever ran last.

Prints markdown tables (and the targets: detector >= 2x zamba's frames/s, loading >= 3x zamba's),
and writes everything to --out as JSON, with the machine. No frame cache is used.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zamba_configs  # this folder's shared configs (the script's folder is on sys.path)
from machine import machine

HERE = Path(__file__).resolve().parent
CLIPS = ("trailcam_720p_h264.mp4", "trailcam_1080p_h264.mp4", "trailcam_720p_mjpeg.avi")
DETECT_CLIPS = ("trailcam_1080p_h264.mp4", "trailcam_720p_h264.mp4")
DETECTOR_SETTINGS = dict(image_height=640, image_width=640, confidence=0.25, nms_threshold=0.45, batch_size=24)
TIME_DISTRIBUTED = zamba_configs.TIME_DISTRIBUTED
SCORE_TOLERANCE = 0.02
TARGET_DETECT, TARGET_LOAD = 2.0, 3.0


def median(values) -> float:
    return float(statistics.median(values))


# -- helpers: one process per side, answering requests (see benchmarks/zamba_detector.py) ----
class KifaruSide:
    """kifaru's detector with one runtime, in its own process (the detector is cached per process).

    With ONNX Runtime, MODEL_CACHE_DIR is an empty temporary folder, so the first load makes the
    ONNX export (and checks it against PyTorch) as on a machine's first use; later loads find it."""

    def __init__(self, runtime: str) -> None:
        import torch  # noqa: F401  imported before anything is timed

        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            pass
        from kifaru.models.registry import MEGADETECTOR_LITE
        from kifaru.models.weights import resolve_weights

        self.runtime = runtime
        self.weights = resolve_weights(MEGADETECTOR_LITE)
        self.empty_cache = tempfile.TemporaryDirectory()
        if runtime == "onnxruntime":
            os.environ["MODEL_CACHE_DIR"] = self.empty_cache.name
        self.detector = None
        self.frames: dict[str, dict[str, np.ndarray]] = {}

    def versions(self) -> dict:
        return {}

    def detector_load(self) -> dict:
        from kifaru.detection.megadetector_lite import MegadetectorLite, load_megadetector_lite
        from kifaru.runtime.choice import runtime_name

        start = time.perf_counter()
        if self.detector is None:
            detector = load_megadetector_lite(weights=self.weights, device="cpu", runtime=self.runtime)
        else:  # load_megadetector_lite would hand back the same object: build another
            detector = MegadetectorLite(self.weights, "cpu", self.runtime)
        seconds = time.perf_counter() - start
        if detector.runtime != runtime_name(self.runtime):  # "torch" is "pytorch"
            raise RuntimeError(f"asked for {self.runtime}, got {detector.runtime}")
        self.detector = self.detector or detector
        return {"seconds": seconds, "runtime": detector.runtime}

    def detect(self, frames: str) -> dict:
        if frames not in self.frames:
            with np.load(frames) as data:
                self.frames[frames] = {name: data[name] for name in data.files}
        arrays = self.frames[frames]
        start = time.perf_counter()
        found = {name: self.detector.detect(list(arr), **DETECTOR_SETTINGS) for name, arr in arrays.items()}
        seconds = time.perf_counter() - start
        scores = {name: [d.score for d in detections] for name, detections in found.items()}
        return {"seconds": seconds, "frames": int(sum(len(a) for a in arrays.values())), "scores": scores}


class Helper:
    """A helper process started with ``command``, asked one JSON request at a time."""

    def __init__(self, name: str, command: list[str], env: dict) -> None:
        self.name = name
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} helper exited (rc {self.process.wait()}); see its stderr above")
        return json.loads(line)

    def ask(self, op: str, **request) -> dict:
        self.process.stdin.write(json.dumps({"op": op, **request}) + "\n")
        self.process.stdin.flush()
        reply = self._read()
        if reply.get("error"):
            raise RuntimeError(f"{self.name} {op}: {reply['error']}")
        return reply

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=120)


def zamba_helper(args) -> Helper:
    return Helper("zamba", [args.zamba_python, str(HERE / "zamba_detector.py")],
                  {**os.environ, "HF_HUB_OFFLINE": "1", "VIDEO_CACHE_DIR": ""})


def kifaru_helper(runtime: str) -> Helper:
    return Helper(f"kifaru ({runtime})", [sys.executable, str(Path(__file__).resolve()), "--serve-kifaru", runtime],
                  {**os.environ, "KIFARU_DETECTOR_RUNTIME": runtime, "VIDEO_CACHE_DIR": ""})


# -- part 1 -----------------------------------------------------------------------------------
def bench_detector(args, clips: dict[str, Path], folder: Path) -> dict:
    import kifaru

    frames = {}
    for name in DETECT_CLIPS:
        arr = kifaru.load_video_frames(clips[name], crop_bottom_pixels=50, fps=4, total_frames=args.frames_per_clip)
        frames[Path(name).stem] = np.ascontiguousarray(arr)
    frames_path = folder / "detector_frames.npz"
    np.savez(frames_path, **frames)
    sizes = {name: list(arr.shape) for name, arr in frames.items()}
    del frames
    print(f"detector frames: {sizes}", file=sys.stderr)

    helpers = {}
    try:
        helpers["zamba"] = zamba_helper(args)
        for runtime in ("onnxruntime", "torch"):
            helpers[f"kifaru_{runtime}"] = kifaru_helper(runtime)
        results = {key: {"seconds": []} for key in helpers}
        for key, helper in helpers.items():  # one at a time, so that no load competes with another
            print(f"{key}: loading the detector ...", file=sys.stderr)
            results[key]["load_first_s"] = helper.ask("detector_load")["seconds"]
            results[key]["load_warm_s"] = helper.ask("detector_load")["seconds"]
        for key, helper in helpers.items():
            print(f"{key}: warm-up pass ...", file=sys.stderr)
            warm = helper.ask("detect", frames=str(frames_path))
            results[key].update(frames=warm["frames"], scores=warm["scores"], warmup_s=warm["seconds"])
        keys = list(helpers)
        for round_ in range(args.repeat):  # interleaved, the order rotating, so load drift hits all
            for key in keys[round_ % len(keys):] + keys[: round_ % len(keys)]:
                seconds = helpers[key].ask("detect", frames=str(frames_path))["seconds"]
                results[key]["seconds"].append(seconds)
                print(f"round {round_ + 1}/{args.repeat} {key}: {seconds:.2f} s", file=sys.stderr)
        results["zamba"]["versions"] = {k: v for k, v in helpers["zamba"].ask("versions").items() if k != "error"}
    finally:
        for helper in helpers.values():
            helper.close()

    zamba_scores = np.concatenate([results["zamba"]["scores"][name] for name in sizes])
    zamba_fps = results["zamba"]["frames"] / median(results["zamba"]["seconds"])
    for key, result in results.items():
        result["median_s"] = median(result["seconds"])
        result["frames_per_s"] = result["frames"] / result["median_s"]
        result["speedup_vs_zamba"] = result["frames_per_s"] / zamba_fps
        scores = np.concatenate([result["scores"][name] for name in sizes])
        diff = np.abs(scores - zamba_scores)
        worst = int(np.argmax(diff))
        result["score_diff_max"] = float(diff[worst])
        result["score_diff_worst_frame"] = {"index": worst, "this": float(scores[worst]), "zamba": float(zamba_scores[worst])}
        result["frames_over_tolerance"] = int((diff >= SCORE_TOLERANCE).sum())
        result["frames_with_detection"] = int((scores > 0).sum())
    return {"frames": sizes, "score_tolerance": SCORE_TOLERANCE, "settings": DETECTOR_SETTINGS, "results": results}


# -- part 2 -----------------------------------------------------------------------------------
def same_source_frames(clip: Path, kifaru_sources: list[int], zamba_frames: np.ndarray) -> dict:
    """Match each of zamba's frames to the nearest of kifaru's fps-4 candidates (no detector)."""
    import kifaru

    config = {k: v for k, v in TIME_DISTRIBUTED.items() if k not in ("megadetector_lite_config", "total_frames")}
    candidates = kifaru.load_video(clip, **{**config, "ensure_total_frames": False})
    pool = candidates.frames.astype(np.float32)
    matched, best, second = [], [], []
    for frame in zamba_frames.astype(np.float32):
        distance = np.abs(pool - frame).mean(axis=(1, 2, 3))
        order = np.argsort(distance)
        matched.append(int(candidates.source_indices[order[0]]))
        best.append(float(distance[order[0]]))
        second.append(float(distance[order[1]]) if len(order) > 1 else float("nan"))
    same = sum(a == b for a, b in zip(matched, kifaru_sources))
    return {
        "same": int(same),
        "of": len(kifaru_sources),
        "kifaru_sources": [int(i) for i in kifaru_sources],
        "zamba_sources_matched": matched,
        "match_distance_median": median(best),
        "runner_up_distance_median": median(second),
    }


def bench_loading(args, clips: dict[str, Path], folder: Path) -> dict:
    import kifaru
    from kifaru.detection.megadetector_lite import load_megadetector_lite

    paths = [clips[name] for name in args.load_clips]
    zamba = zamba_helper(args)
    try:
        start = time.perf_counter()
        detector = load_megadetector_lite()
        detector_load = time.perf_counter() - start
        print(f"loading with the detector; kifaru runtime {detector.runtime}", file=sys.stderr)
        rows, loaded, zamba_frames = [], {}, {}
        for i, path in enumerate(paths):  # warm-up: one call per clip and side, and the frames
            print(f"warm-up {path.name} ...", file=sys.stderr)
            save = folder / f"zamba_frames_{i}.npy"
            zamba.ask("load", path=str(path), config=TIME_DISTRIBUTED, save=str(save))
            zamba_frames[path] = np.load(save)
            loaded[path] = kifaru.load_video(path, **TIME_DISTRIBUTED)
            if loaded[path].frames.shape != zamba_frames[path].shape:
                raise RuntimeError(f"{path.name}: kifaru {loaded[path].frames.shape} vs zamba {zamba_frames[path].shape}")
        seconds = {path: {"zamba": [], "kifaru": []} for path in paths}
        for round_ in range(args.repeat):  # interleaved; which side goes first alternates
            for path in paths:
                for side in (("zamba", "kifaru") if round_ % 2 == 0 else ("kifaru", "zamba")):
                    if side == "zamba":
                        took = zamba.ask("load", path=str(path), config=TIME_DISTRIBUTED, save=None)["seconds"]
                    else:
                        start = time.perf_counter()
                        kifaru.load_video_frames(path, **TIME_DISTRIBUTED)
                        took = time.perf_counter() - start
                    seconds[path][side].append(took)
                    print(f"round {round_ + 1}/{args.repeat} {path.name} {side}: {took:.2f} s", file=sys.stderr)
    finally:
        zamba.close()

    for path in paths:
        row = {
            "clip": path.name,
            "zamba_seconds": seconds[path]["zamba"],
            "kifaru_seconds": seconds[path]["kifaru"],
            "zamba_s": median(seconds[path]["zamba"]),
            "kifaru_s": median(seconds[path]["kifaru"]),
            "shape": list(loaded[path].frames.shape),
        }
        row["speedup"] = row["zamba_s"] / row["kifaru_s"]
        try:
            row["same_frames"] = same_source_frames(path, loaded[path].source_indices, zamba_frames[path])
        except Exception as error:  # optional: never lose the timings to it
            row["same_frames"] = {"error": f"{type(error).__name__}: {error}"}
        rows.append(row)
    total_zamba = sum(r["zamba_s"] for r in rows)
    total_kifaru = sum(r["kifaru_s"] for r in rows)
    return {
        "config": TIME_DISTRIBUTED,
        "kifaru_runtime": detector.runtime,
        "kifaru_detector_load_s": detector_load,
        "clips": rows,
        "total_zamba_s": total_zamba,
        "total_kifaru_s": total_kifaru,
        "total_speedup": total_zamba / total_kifaru,
    }


# -- report -----------------------------------------------------------------------------------
def report(result: dict) -> None:
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, load average {m['load_average_at_start']} at start; "
          f"{m.get('load_average_at_end')} at end; python {m['python']}, torch {m['torch']} ({m['torch_threads']} threads), onnxruntime {m['onnxruntime']}; "
          f"zamba side: {result.get('zamba_versions', {})}; --repeat {result['repeat']} (medians)")
    detect = result.get("detector")
    if detect:
        cols = [("zamba", "zamba (torch)"), ("kifaru_onnxruntime", "kifaru (onnxruntime)"), ("kifaru_torch", "kifaru (torch)")]
        r = detect["results"]
        frames = r["zamba"]["frames"]
        sizes = ", ".join(f"{n} of {name} ({w}x{h})" for name, (n, h, w, _) in detect["frames"].items())
        print(f"\n### Detector at 640x640: {frames} frames, {sizes}\n")
        print("| | " + " | ".join(title for _, title in cols) + " |")
        print("| --- |" + " ---: |" * len(cols))
        print("| frames/s | " + " | ".join(f"{r[k]['frames_per_s']:.2f}" for k, _ in cols) + " |")
        print("| s per pass (median) | " + " | ".join(f"{r[k]['median_s']:.2f}" for k, _ in cols) + " |")
        print("| speed-up vs zamba | " + " | ".join(f"{r[k]['speedup_vs_zamba']:.2f}x" for k, _ in cols) + " |")
        print("| first load s | " + " | ".join(f"{r[k]['load_first_s']:.2f}" for k, _ in cols) + " |")
        print("| warm load s | " + " | ".join(f"{r[k]['load_warm_s']:.2f}" for k, _ in cols) + " |")
        print("| frames with a detection | " + " | ".join(str(r[k]["frames_with_detection"]) for k, _ in cols) + " |")
        print("| max per-frame score diff vs zamba | " + " | ".join(
            "-" if k == "zamba" else f"{r[k]['score_diff_max']:.4f} ({r[k]['frames_over_tolerance']} >= {SCORE_TOLERANCE})"
            for k, _ in cols) + " |")
        best = r["kifaru_onnxruntime"]["speedup_vs_zamba"]
        print(f"\ndetector target >= {TARGET_DETECT:.0f}x zamba's frames/s: kifaru (onnxruntime) {best:.2f}x "
              f"-> {'MET' if best >= TARGET_DETECT else 'NOT MET'}")
        worst = max(r[k]["score_diff_max"] for k, _ in cols[1:])
        print(f"detections agree (per-frame max score within {SCORE_TOLERANCE}): worst difference {worst:.4f} "
              f"-> {'OK' if worst < SCORE_TOLERANCE else 'DISAGREE'}")
    load = result.get("loading")
    if load:
        print(f"\n### load_video_frames with MegadetectorLite (time_distributed defaults), kifaru runtime "
              f"{load['kifaru_runtime']} (its detector loaded once beforehand: {load['kifaru_detector_load_s']:.2f} s)\n")
        print("| clip | zamba s | kifaru s | speed-up | same source frames |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for row in load["clips"]:
            same = row["same_frames"]
            same_text = f"{same['same']}/{same['of']}" if "same" in same else "n/a"
            print(f"| {row['clip']} | {row['zamba_s']:.2f} | {row['kifaru_s']:.2f} | {row['speedup']:.2f}x | {same_text} |")
        print(f"| **total** | **{load['total_zamba_s']:.2f}** | **{load['total_kifaru_s']:.2f}** | "
              f"**{load['total_speedup']:.2f}x** | |")
        print(f"\nloading target >= {TARGET_LOAD:.0f}x zamba's: {load['total_speedup']:.2f}x "
              f"-> {'MET' if load['total_speedup'] >= TARGET_LOAD else 'NOT MET'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=HERE.parent / "bench-out" / "clips")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs after one warm-up; the median is reported")
    parser.add_argument("--frames-per-clip", type=int, default=24, help="frames per clip for the detector part")
    parser.add_argument("--parts", nargs="+", choices=("detect", "load"), default=["detect", "load"])
    parser.add_argument("--load-clips", nargs="+", choices=CLIPS, default=list(CLIPS),
                        help="clips for the loading part (default: all three)")
    parser.add_argument("--out", type=Path, default=HERE.parent / "bench-out" / "detector.json")
    parser.add_argument(
        "--zamba-python",
        default=os.environ.get("ZAMBA_PYTHON", str(Path.home() / ".cache/kifaru-bench/zamba-venv/bin/python")),
        help="python of a venv with zamba 2.7.2 (make one with benchmarks/zamba_setup.sh)",
    )
    # internal: the kifaru helper process for one detector runtime
    parser.add_argument("--serve-kifaru", choices=("onnxruntime", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["VIDEO_CACHE_DIR"] = ""

    if args.serve_kifaru:
        sys.path.insert(0, str(HERE))
        from zamba_detector import serve

        reply_to = os.fdopen(os.dup(sys.stdout.fileno()), "w")
        sys.stdout = sys.stderr
        os.dup2(sys.stderr.fileno(), 1)
        serve(KifaruSide(args.serve_kifaru), reply_to)
        return 0

    subprocess.run([sys.executable, str(HERE / "make_trailcam_clips.py"), str(args.clips)], check=True, stdout=sys.stderr)
    clips = {name: args.clips / name for name in CLIPS}
    result = {"machine": machine(), "repeat": args.repeat, "command": " ".join(sys.argv)}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        if "detect" in args.parts:
            result["detector"] = bench_detector(args, clips, Path(folder))
            result["zamba_versions"] = result["detector"]["results"]["zamba"]["versions"]
        if "load" in args.parts:
            result["loading"] = bench_loading(args, clips, Path(folder))
    result["wall_s"] = time.perf_counter() - started
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if "zamba_versions" not in result:
        result["zamba_versions"] = json.loads(
            subprocess.run([args.zamba_python, "-c", "import json, torch; from importlib.metadata import version; "
                            "print(json.dumps({'zamba': version('zamba'), 'torch': torch.__version__}))"],
                           check=True, capture_output=True, text=True).stdout)
    report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.out} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
