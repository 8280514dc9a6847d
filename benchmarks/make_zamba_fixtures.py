"""Write tests/fixtures/zamba_reference/: what zamba 2.7.2's loader returns on the shared real clips.

Runs with kifaru's venv (numpy, opencv) plus the ffmpeg/ffprobe CLI. zamba itself runs in its own
venv through benchmarks/zamba_frames.py, called with $ZAMBA_PYTHON (see benchmarks/zamba_setup.sh):

    ZAMBA_PYTHON=/path/to/zamba-venv/bin/python .venv/bin/python benchmarks/make_zamba_fixtures.py

Writes one compressed npz per config, <config_name>.npz, holding for clip i:

    paths          clip paths relative to the shared data root (../shared/data)
    config         the config as a JSON string
    error_{i}      '' or zamba's exception "Type: message" (message truncated)
    n_frames_{i}   number of frames zamba returned (-1 on error)
    shape_{i}      shape of zamba's array (T, H, W, 3); empty on error
    thumbs_{i}     uint8 (T, th, tw, 3): each frame resized with cv2.INTER_AREA to
                   (tw, th) = (min(W, --thumb), min(H, --thumb)); aspect not kept. Compare by
                   resizing your own frame to thumbs_{i}.shape[1:3] the same way.
    mean_{i}       float32 (T, 3): per-frame, per-channel mean of the full-size frame
    sha1_{i}       uint8 (T, 20): sha1 of each full-size frame's bytes (bit-exactness checks)
    src_index_{i}  int32 (T,): index of the decoded source frame (presentation order, every
                   decoded frame, no rate conversion) that is byte-identical to the output frame;
                   -1 if none (crop/resize configs) and the first match if several

plus source_frames.npz (per clip: pts_{i} = best_effort_timestamp_time of every decoded frame,
pict_type_{i}) and manifest.json (config name -> config, zamba and ffmpeg versions, output
shapes, errors).
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import zamba_configs  # this folder's shared configs (the script's folder is on sys.path)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "tests" / "fixtures" / "zamba_reference"
ZAMBA_FRAMES = Path(__file__).resolve().parent / "zamba_frames.py"
MAX_ERROR_CHARS = 500

CONFIGS = {
    "fps": {"fps": 4},
    "fps_0_5": {"fps": 0.5},
    "fps_no_ensure": {"fps": 4, "ensure_total_frames": False},
    "evenly": {"total_frames": 16, "evenly_sample_total_frames": True},
    "early_bias": {"early_bias": True},
    "frame_indices": {"frame_indices": [0, 2, 5, 9]},
    "td_defaults_no_detector": zamba_configs.TIME_DISTRIBUTED_NO_DETECTOR,
}


def thumbnail(frame: np.ndarray, size: int) -> np.ndarray:
    """Downscale one (H, W, 3) uint8 frame to at most size x size (no upscaling, aspect not kept)."""
    h, w = frame.shape[:2]
    target = (min(w, size), min(h, size))
    if target == (w, h):
        return frame.copy()
    return cv2.resize(frame, target, interpolation=cv2.INTER_AREA)


def find_clips(data_root: Path) -> list[Path]:
    raw = data_root / "zamba-test-assets" / "videos" / "data" / "raw"
    clips = [p for p in raw.rglob("*") if p.is_file()]
    clips += list((data_root / "real-videos").glob("*.mp4"))
    return sorted(clips, key=lambda p: str(p.relative_to(data_root)))


def ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0]


def decode_source(path: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """Every decoded frame (rgb24, passthrough, no rate conversion) by content hash, plus pts/types."""
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=width,height:frame=best_effort_timestamp_time,pict_type", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )
    info = json.loads(probe.stdout)
    w, h = info["streams"][0]["width"], info["streams"][0]["height"]
    pts = np.array([float(f.get("best_effort_timestamp_time", "nan")) for f in info["frames"]])
    types = np.array([f.get("pict_type", "?") for f in info["frames"]], dtype=str)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vsync", "0", "-f", "rawvideo",
         "-pix_fmt", "rgb24", "pipe:"],
        capture_output=True, check=True,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)
    index = {}
    for k, f in enumerate(frames):
        index.setdefault(hashlib.sha1(f.tobytes()).digest(), k)
    if len(frames) != len(pts):
        print(f"WARNING: {path}: ffmpeg decoded {len(frames)}, ffprobe {len(pts)}", file=sys.stderr)
    return index, pts, types


def run_zamba(zamba_python: str, cfg: dict, clips: list[Path], out: Path) -> None:
    cmd = [zamba_python, str(ZAMBA_FRAMES), "--config", json.dumps(cfg), "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(cmd + [str(c) for c in clips], check=True, env=env)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--zamba-python", default=os.environ.get("ZAMBA_PYTHON"))
    parser.add_argument("--thumb", type=int, default=16,
                        help="max thumbnail side (16 keeps all fixtures ~1.5 MB; 32 is ~5 MB)")
    parser.add_argument("--only", nargs="*", choices=list(CONFIGS), help="configs to (re)generate")
    args = parser.parse_args(argv)
    if not args.zamba_python:
        parser.error("set ZAMBA_PYTHON or --zamba-python (see benchmarks/zamba_setup.sh)")

    data_root = args.data_root.resolve()
    clips = find_clips(data_root)
    rel = [str(c.relative_to(data_root)) for c in clips]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for key in ("configs", "shapes", "errors"):
        manifest.setdefault(key, {})

    print(f"decoding {len(clips)} source clips", file=sys.stderr)
    sources = [decode_source(c) for c in clips]
    np.savez_compressed(
        args.out_dir / "source_frames.npz",
        paths=np.array(rel, dtype=str),
        **{f"pts_{i}": s[1] for i, s in enumerate(sources)},
        **{f"pict_type_{i}": s[2] for i, s in enumerate(sources)},
    )

    for name in args.only or list(CONFIGS):
        cfg = CONFIGS[name]
        print(f"== {name}: {json.dumps(cfg)} ({len(clips)} clips)", file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            raw_path = Path(tmp) / "raw.npz"
            run_zamba(args.zamba_python, cfg, clips, raw_path)
            raw = np.load(raw_path)
            zamba_version = str(raw["zamba_version"])
            fixture = {"paths": np.array(rel, dtype=str), "config": np.array(json.dumps(cfg))}
            shapes, errors = {}, {}
            for i, r in enumerate(rel):
                error = str(raw[f"error_{i}"])[:MAX_ERROR_CHARS]
                frames = raw[f"frames_{i}"]
                if error:
                    errors[r] = error
                    frames = np.zeros((0, 0, 0, 3), np.uint8)
                hashes = [hashlib.sha1(f.tobytes()).digest() for f in frames]
                thumbs = [thumbnail(f, args.thumb) for f in frames]
                fixture[f"error_{i}"] = np.array(error)
                fixture[f"n_frames_{i}"] = np.array(-1 if error else len(frames), np.int64)
                fixture[f"shape_{i}"] = np.array([] if error else frames.shape, np.int64)
                fixture[f"thumbs_{i}"] = (
                    np.stack(thumbs) if thumbs else np.zeros((0, 0, 0, 3), np.uint8)
                )
                fixture[f"mean_{i}"] = (
                    frames.reshape(len(frames), -1, 3).mean(axis=1).astype(np.float32)
                    if len(frames) else np.zeros((0, 3), np.float32)
                )
                fixture[f"sha1_{i}"] = np.frombuffer(b"".join(hashes), np.uint8).reshape(-1, 20)
                fixture[f"src_index_{i}"] = np.array(
                    [sources[i][0].get(h, -1) for h in hashes], np.int32
                )
                shapes[r] = None if error else list(frames.shape)
        np.savez_compressed(args.out_dir / f"{name}.npz", **fixture)
        manifest["configs"][name] = cfg
        manifest["shapes"][name] = shapes
        manifest["errors"][name] = errors

    manifest["zamba_version"] = zamba_version
    manifest["ffmpeg_version"] = ffmpeg_version()
    manifest["notes"] = {
        "paths": "relative to ../shared/data (the repo root's sibling shared/data)",
        "thumbnail": f"cv2.INTER_AREA to (min(W,{args.thumb}), min(H,{args.thumb}))",
        "shapes": "per config: clip -> shape [T, H, W, 3] of zamba's output, null on error",
        "generated_by": "benchmarks/make_zamba_fixtures.py",
    }
    manifest["configs"] = {k: manifest["configs"][k] for k in CONFIGS if k in manifest["configs"]}
    manifest_path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
