"""Write tests/fixtures/zamba_reference/: what zamba 2.7.2's loader returns on the shared real clips.

Runs with kifaru's venv (needs numpy and opencv). zamba itself runs in its own venv through
benchmarks/zamba_frames.py, called with $ZAMBA_PYTHON (see benchmarks/zamba_setup.sh):

    ZAMBA_PYTHON=/path/to/zamba-venv/bin/python .venv/bin/python benchmarks/make_zamba_fixtures.py

One compressed npz per config, <config_name>.npz, holding for clip i (paths relative to the data root):

    paths        clip paths relative to the shared data root (../shared/data)
    config       the config as a JSON string
    error_{i}    '' or zamba's exception "Type: message" (message truncated)
    n_frames_{i} number of frames zamba returned (-1 on error)
    shape_{i}    shape of zamba's array (T, H, W, 3); empty on error
    thumbs_{i}   uint8 (T, h, w, 3): every frame resized with cv2.INTER_AREA to
                 (min(W, 32), min(H, 32)) -- see thumbnail() -- for tolerant comparisons
    mean_{i}     float32 (T, 3): per-frame, per-channel mean of the full-size frame

plus manifest.json: config name -> config, zamba and ffmpeg versions, and the frame counts.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "tests" / "fixtures" / "zamba_reference"
ZAMBA_FRAMES = Path(__file__).resolve().parent / "zamba_frames.py"
THUMB = 32
MAX_ERROR_CHARS = 500

CONFIGS = {
    "fps": {"fps": 4},
    "fps_0_5": {"fps": 0.5},
    "fps_no_ensure": {"fps": 4, "ensure_total_frames": False},
    "evenly": {"total_frames": 16, "evenly_sample_total_frames": True},
    "early_bias": {"early_bias": True},
    "frame_indices": {"frame_indices": [0, 2, 5, 9]},
    "td_defaults_no_detector": {
        "crop_bottom_pixels": 50,
        "fps": 4,
        "total_frames": 16,
        "model_input_height": 240,
        "model_input_width": 426,
        "ensure_total_frames": True,
    },
}


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """Downscale one (H, W, 3) uint8 frame to at most 32x32 (no upscaling, aspect not kept)."""
    h, w = frame.shape[:2]
    size = (min(w, THUMB), min(h, THUMB))
    if size == (w, h):
        return frame.copy()
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def find_clips(data_root: Path) -> list[Path]:
    raw = data_root / "zamba-test-assets" / "videos" / "data" / "raw"
    clips = [p for p in raw.rglob("*") if p.is_file()]
    clips += sorted((data_root / "real-videos").glob("*.mp4"))
    return sorted(clips, key=lambda p: str(p.relative_to(data_root)))


def ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0]


def run_zamba(zamba_python: str, cfg: dict, clips: list[Path], out: Path) -> None:
    cmd = [zamba_python, str(ZAMBA_FRAMES), "--config", json.dumps(cfg), "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(cmd + [str(c) for c in clips], check=True, env=env)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--zamba-python", default=os.environ.get("ZAMBA_PYTHON"))
    parser.add_argument("--only", nargs="*", help="config names to (re)generate")
    args = parser.parse_args(argv)
    if not args.zamba_python:
        parser.error("set ZAMBA_PYTHON or --zamba-python (see benchmarks/zamba_setup.sh)")

    data_root = args.data_root.resolve()
    clips = find_clips(data_root)
    rel = [str(c.relative_to(data_root)) for c in clips]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.setdefault("configs", {})
    manifest.setdefault("n_frames", {})
    manifest.setdefault("errors", {})

    names = args.only or list(CONFIGS)
    for name in names:
        cfg = CONFIGS[name]
        print(f"== {name}: {json.dumps(cfg)} ({len(clips)} clips)", file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            raw_path = Path(tmp) / "raw.npz"
            run_zamba(args.zamba_python, cfg, clips, raw_path)
            raw = np.load(raw_path)
            zamba_version = str(raw["zamba_version"])
            fixture = {"paths": np.array(rel, dtype=str), "config": np.array(json.dumps(cfg))}
            counts, errors = {}, {}
            for i, r in enumerate(rel):
                error = str(raw[f"error_{i}"])
                frames = raw[f"frames_{i}"]
                if error:
                    error = error[:MAX_ERROR_CHARS]
                    errors[r] = error
                    frames = np.zeros((0, 0, 0, 3), np.uint8)
                    shape = np.zeros((0,), np.int64)
                else:
                    shape = np.array(frames.shape, np.int64)
                thumbs = [thumbnail(f) for f in frames]
                fixture[f"error_{i}"] = np.array(error)
                fixture[f"n_frames_{i}"] = np.array(-1 if error else len(frames), np.int64)
                fixture[f"shape_{i}"] = shape
                fixture[f"thumbs_{i}"] = (
                    np.stack(thumbs) if thumbs else np.zeros((0, 0, 0, 3), np.uint8)
                )
                fixture[f"mean_{i}"] = frames.reshape(len(frames), -1, 3).mean(axis=1).astype(
                    np.float32
                ) if len(frames) else np.zeros((0, 3), np.float32)
                counts[r] = None if error else list(frames.shape)
        np.savez_compressed(args.out_dir / f"{name}.npz", **fixture)
        manifest["configs"][name] = cfg
        manifest["n_frames"][name] = counts
        manifest["errors"][name] = errors

    manifest["zamba_version"] = zamba_version
    manifest["ffmpeg_version"] = ffmpeg_version()
    manifest["data_root"] = "paths are relative to ../shared/data (repo root's sibling)"
    manifest["thumbnail"] = f"cv2.INTER_AREA to (min(W,{THUMB}), min(H,{THUMB}))"
    manifest["n_frames_note"] = "per config: clip -> shape [T, H, W, 3] of zamba's output, null on error"
    manifest["configs"] = {k: manifest["configs"][k] for k in CONFIGS if k in manifest["configs"]}
    manifest_path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
