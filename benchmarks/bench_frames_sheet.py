"""Peak memory and wall time of ``kifaru frames CLIP --sheet s.png`` with no config (issue 13).

    .venv/bin/python benchmarks/bench_frames_sheet.py [--clip CLIP] [--seconds 30] [--old]
        [--out bench-out/frames_sheet.json]

Without --clip, makes a 30 s 1920x1080 h264 clip at 30 fps (900 frames, a keyframe every second
as trail cameras write; a still, noisy gradient with a square moving over it, so that it
compresses like camera footage) in bench-out/frames_sheet/ and keeps it for later runs.

Runs the command in a child process exactly as a new user types it: no config (so every frame,
at full size, is selected), no frame cache (VIDEO_CACHE_DIR and the other kifaru variables
removed from its environment), in an empty working folder. Peak memory is the child's peak
resident set size (``ru_maxrss`` from ``os.wait4``: the kernel's high-water mark, not a sample;
the command is one process, its decoding threads included). Wall time is the whole command,
start-up included.

--old also runs the behaviour before issue 13 in a child the same way: every selected frame
loaded through the library at full size (stacked with ``np.stack``, which holds them twice, as
the loader did), then a sheet drawn from all of them. It needs about 12 GB for the default clip.

Prints a markdown table like the other benchmarks and writes the machine, the commands and the
figures to --out as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np

from machine import machine  # this folder's (the script's folder is on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_FOLDER = ROOT / "bench-out" / "frames_sheet"
TARGET_BYTES = 1.5e9
# What the loader and the sheet did before issue 13, through today's library: the same pipeline,
# with the old stacking (all decoded frames held while their stacked copy is made).
OLD_WAY = """
import sys
import numpy as np
import kifaru.video.loader as loader
from kifaru.video.sheet import contact_sheet
loader._stack_consuming = lambda plan, frames: np.stack([frames[i] for i in plan])
loaded = loader.FrameLoader(loader.VideoLoaderConfig()).load(sys.argv[1])
labels = [f"#{i} src {s} t={t:.2f}s" for i, (s, t) in enumerate(zip(loaded.source_indices, loaded.times))]
sheet = contact_sheet(loaded.frames, labels)
sheet.save(sys.argv[2])
print(f"{len(loaded.frames)} frames, sheet {sheet.width}x{sheet.height}")
"""


def cpu_flags() -> list[str]:
    """The instruction sets that matter for the numeric libraries, from /proc/cpuinfo."""
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"]
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in wanted if flag in present]
    except OSError:
        pass
    return []


def make_clip(path: Path, seconds: float, fps: int = 30, size: tuple[int, int] = (1080, 1920)) -> Path:
    import av

    height, width = size
    rng = np.random.default_rng(0)
    gradient = np.linspace(40, 200, width, dtype=np.float32)[None, :, None] * np.array([0.6, 0.8, 0.5])
    background = np.clip(gradient + rng.normal(0, 6, (height, width, 3)), 0, 255).astype(np.uint8)
    partial = path.with_name(f".partial-{path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(partial), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23", "x264-params": f"keyint={fps}:min-keyint={fps}"}
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(int(seconds * fps)):
            frame = background.copy()
            x = int((width - 200) * (0.5 + 0.5 * np.sin(i / 40)))
            y = int((height - 200) * (0.5 + 0.5 * np.cos(i / 55)))
            frame[y : y + 200, x : x + 200] = (180, 60, 40)
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = i
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())
    partial.replace(path)
    return path


def clean_environment(home: Path) -> dict:
    """This environment as a new user's: no kifaru variables, an empty HOME (no frame cache)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIFARU_")}
    for name in ("VIDEO_CACHE_DIR", "MODEL_CACHE_DIR", "XDG_CACHE_HOME"):
        env.pop(name, None)
    env["HOME"] = str(home)
    return env


def _first_to_go() -> None:
    """In the child: be the process the kernel kills first if memory runs out (the old way can
    take most of a machine's memory; other work on it should not pay for that)."""
    try:
        Path("/proc/self/oom_score_adj").write_text("1000")
    except OSError:
        pass


def run_measured(command: list[str], cwd: Path, env: dict, expendable: bool = False) -> dict:
    """Run a command; its wall time, peak RSS (kernel high-water mark) and output."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=err, preexec_fn=_first_to_go if expendable else None
        )
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return {
        "command": command,
        "exit_code": child.returncode,
        "wall_s": round(wall, 2),
        "peak_rss_bytes": usage.ru_maxrss * 1024,  # kilobytes on Linux
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "stdout": stdout,
        "stderr": stderr,
    }


def sheet_size(path: Path) -> list[int] | None:
    from PIL import Image

    if not path.exists():
        return None
    with Image.open(path) as image:
        return [image.width, image.height]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, help="the clip (default: make a 30 s 1080p h264 clip)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the clip made")
    parser.add_argument("--old", action="store_true", help="also run the behaviour before issue 13 (~12 GB)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "frames_sheet.json")
    args = parser.parse_args()

    clip = args.clip
    if clip is None:
        clip = DEFAULT_FOLDER / f"clip_1080p_h264_{args.seconds:g}s.mp4"
        if not clip.exists():
            print(f"making {clip} ...", file=sys.stderr)
            make_clip(clip, args.seconds)
    clip = clip.resolve()
    about = machine()
    about["cpu_flags"] = cpu_flags()
    runs = {}
    with tempfile.TemporaryDirectory(prefix="bench-frames-sheet-") as scratch:
        scratch = Path(scratch)
        for side in ["kifaru"] + (["old way"] if args.old else []):
            work, home = scratch / side.replace(" ", "_"), scratch / f"{side.replace(' ', '_')}_home"
            work.mkdir()
            home.mkdir()
            if side == "kifaru":
                command = [sys.executable, "-m", "kifaru", "frames", str(clip), "--sheet", "s.png"]
            else:
                command = [sys.executable, "-c", OLD_WAY, str(clip), "s.png"]
            print(f"running {side} ...", file=sys.stderr)
            run = run_measured(command, work, clean_environment(home), expendable=side != "kifaru")
            run["sheet_size"] = sheet_size(work / "s.png")
            runs[side] = run
            if run["exit_code"] != 0:
                print(run["stderr"], file=sys.stderr)

    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": about,
        "clip": str(clip),
        "clip_bytes": clip.stat().st_size,
        "target_peak_bytes": TARGET_BYTES,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))

    print(f"clip: {clip.name} ({clip.stat().st_size / 1e6:.1f} MB); machine: {about['cpu']}, "
          f"{about['cores']} cores, {', '.join(about['cpu_flags']) or 'no AVX2'}")
    print()
    print("| run | exit | wall s | CPU s | peak RSS MiB | sheet px |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for side, run in runs.items():
        size = "x".join(map(str, run["sheet_size"])) if run["sheet_size"] else "-"
        print(f"| {side} | {run['exit_code']} | {run['wall_s']:.1f} | {run['cpu_s']:.1f} | "
              f"{run['peak_rss_bytes'] / 2**20:.0f} | {size} |")
    kifaru = runs["kifaru"]
    print()
    print("kifaru's messages:", *(line for line in kifaru["stderr"].splitlines() if line), sep="\n  ")
    ok = kifaru["exit_code"] == 0 and kifaru["peak_rss_bytes"] < TARGET_BYTES
    print(f"\ntarget: peak under {TARGET_BYTES / 1e9:.1f} GB: {'met' if ok else 'NOT met'} "
          f"({kifaru['peak_rss_bytes'] / 1e9:.2f} GB); wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
