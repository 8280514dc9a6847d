"""The Ray backend against the local backend on the same cores, in one run: ``detect`` and
``predict``, videos/hour, and whether the outputs are the same bytes.

    .venv/bin/python benchmarks/bench_ray.py [--copies 1 4] [--repeat 2] [--parts detect predict]
        [--sides local ray-1-node ray-2-nodes] [--json bench-out/ray.json]

Clips: the 15 s clips of ``benchmarks/make_trailcam_clips.py`` (720p and 1080p h264, 720p MJPEG;
made if missing) and the real clip they are made from (../shared/data/real-videos/, when present),
each linked C times into a folder of its own for each C of --copies: a small and a large run.

Sides, each run as a user types it, in a fresh output folder:

- ``local``: ``kifaru detect|predict --data-dir D ...`` (its default worker processes);
- ``ray-1-node``: the same with ``--backend ray --ray-address A``, on a cluster this script starts
  on 127.0.0.1 with ``ray start --head --num-cpus=<cores>``: the same cores as ``local``;
- ``ray-2-nodes``: a head and a second node on this machine (``ray start`` twice), each with half
  the cores: the path of a real cluster (two raylets, objects moved between them) on the same cores.

Only one side runs at a time: a cluster is started before its side's run and stopped after it
(``ray stop --force``), so that no idle Ray process shares the cores with the local side; the
cluster's start is not in the time, the run's connection to it and its actors' start are. The
order of the sides is reversed in even rounds.

predict: the seed-1 random-weight time_distributed checkpoint (as benchmarks/bench_engine.py),
with its defaults (MegadetectorLite frame selection, batch 2); one model cache for every side, its
ONNX export made by a warm-up run before the timed ones.

Figures: the median wall time of each side's whole command, videos/hour from it, and the ratio of
each Ray side's videos/hour to the local side's (target: at least 0.85). From the small and the
large run of a side, what a long run is made of: its steady rate (the extra clips over the extra
time) and its start (the small run's time less its clips at that rate: starting Python, loading
the models, connecting to the cluster). Outputs: each Ray side's against the local side's (``detections.json`` without its completion times, ``detection_summary.csv``,
``zamba_predictions.csv``), byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

from bench_engine import DEFAULT_CLIPS, MADE_CLIPS, SOURCE_CLIP, make_checkpoint, model_cache  # noqa: E402
from machine import machine  # noqa: E402
from tests.helpers.outputs import without_clock  # noqa: E402  (the tests' comparison of two runs)

KIFARU = [sys.executable, "-m", "kifaru"]
RAY = str(Path(sys.executable).with_name("ray"))
SIDES = ("local", "ray-1-node", "ray-2-nodes")
COMPARED = {"detect": ("detections.json", "detection_summary.csv"), "predict": ("zamba_predictions.csv",)}
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # A cluster on 127.0.0.1 only: without the token authentication recent Ray turns on by default.
    "RAY_AUTH_MODE": "disabled",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A Ray cluster on this machine: ``nodes`` raylets sharing ``cores`` CPUs."""

    def __init__(self, nodes: int, cores: int, env: dict) -> None:
        self.nodes, self.cores, self.env = nodes, cores, env
        self.address = ""

    def __enter__(self) -> "Cluster":
        port = free_port()
        common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats", f"--num-cpus={self.cores // self.nodes}"]
        run = dict(check=True, capture_output=True, env=self.env, timeout=180)
        subprocess.run([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", *common], **run)
        for _ in range(self.nodes - 1):
            subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", *common], **run)
        self.address = f"127.0.0.1:{port}"
        time.sleep(2)  # the nodes register with the head
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=self.env, timeout=180)


def link_clips(work: Path, copies: int) -> tuple[Path, int]:
    sources = [DEFAULT_CLIPS / name for name in MADE_CLIPS] + ([SOURCE_CLIP] if SOURCE_CLIP.exists() else [])
    folder = work / f"clips-x{copies}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for copy in range(copies):
        for source in sources:
            target = folder / f"copy{copy}_{source.name}"
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
    return folder, len(sources) * copies


def command(part: str, clips: Path, out: Path, checkpoint: Path, cache: Path) -> list[str]:
    if part == "detect":
        return [*KIFARU, "detect", "--data-dir", str(clips), "--output-dir", str(out), "-q"]
    return [*KIFARU, "predict", "--data-dir", str(clips), "--checkpoint", str(checkpoint), "--save-dir", str(out),
            "--model-cache-dir", str(cache), "-q"]  # fmt: skip


def timed(argv: list[str], env: dict, log: Path) -> float:
    start = time.perf_counter()
    with open(log, "w") as f:
        done = subprocess.run(argv, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=log.parent)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): see {log}")
    return seconds


def same_outputs(part: str, one: Path, other: Path) -> bool:
    for name in COMPARED[part]:
        a, b = (one / name).read_bytes(), (other / name).read_bytes()
        if name.endswith(".json"):
            if without_clock(json.loads(a)) != without_clock(json.loads(b)):
                return False
        elif a != b:
            return False
    return True


def run_side(side: str, part: str, argv: list[str], env: dict, cores: int, log: Path) -> float:
    if side == "local":
        return timed(argv, env, log)
    with Cluster(1 if side == "ray-1-node" else 2, cores, env) as cluster:
        return timed([*argv, "--backend", "ray", "--ray-address", cluster.address], env, log)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, nargs=2, default=[1, 4], metavar=("SMALL", "LARGE"), help="links of each clip in the small and the large run (default 1 4)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds (default 2)")
    parser.add_argument("--parts", nargs="+", choices=sorted(COMPARED), default=["detect", "predict"])
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--work", type=Path, default=ROOT / "bench-out" / "ray")
    parser.add_argument("--json", type=Path, default=ROOT / "bench-out" / "ray.json")
    args = parser.parse_args()
    args.work, args.json = args.work.resolve(), args.json.resolve()  # each run's folder is its working directory
    if "local" not in args.sides:
        args.sides.insert(0, "local")
    args.work.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    env = {**os.environ, **RAY_ENV}
    subprocess.run([sys.executable, str(HERE / "make_trailcam_clips.py"), str(DEFAULT_CLIPS)], check=True, stdout=sys.stderr)
    folders = {copies: link_clips(args.work, copies) for copies in sorted(set(args.copies))}
    checkpoint = make_checkpoint(args.work / "time_distributed_seed1.ckpt", "random", ROOT)
    cache = model_cache(args.work / "models")
    if "predict" in args.parts:  # the ONNX export, before any timed run
        small = folders[min(folders)][0]
        timed(command("predict", small, args.work / "warm-up", checkpoint, cache) + ["--dry-run"], env, args.work / "warm-up.log")
    runs: list[dict] = []
    for round_number in range(1, args.repeat + 1):
        for part in args.parts:
            for copies, (clips, count) in folders.items():
                order = args.sides if round_number % 2 else list(reversed(args.sides))
                for side in order:
                    out = args.work / f"{part}-x{copies}-{side}-{round_number}"
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir(parents=True)
                    seconds = run_side(side, part, command(part, clips, out, checkpoint, cache), env, cores, out / "run.log")
                    runs.append({"part": part, "clips": count, "side": side, "round": round_number, "seconds": seconds, "out": str(out)})
                    print(f"round {round_number} {part} {count} clips {side}: {seconds:.1f} s", file=sys.stderr)
    result = {"machine": machine(), "repeat": args.repeat, "runs": runs, "summary": [], "steady": []}
    for part in args.parts:
        medians: dict[tuple[str, int], float] = {}
        for _, count in folders.values():
            local = [r for r in runs if (r["part"], r["clips"], r["side"]) == (part, count, "local")]
            local_median = statistics.median(r["seconds"] for r in local)
            for side in args.sides:
                mine = [r for r in runs if (r["part"], r["clips"], r["side"]) == (part, count, side)]
                median = medians[side, count] = statistics.median(r["seconds"] for r in mine)
                same = None if side == "local" else all(same_outputs(part, Path(a["out"]), Path(b["out"])) for a, b in zip(local, mine))
                result["summary"].append({
                    "part": part, "clips": count, "side": side, "median_seconds": median, "videos_per_hour": count / median * 3600,
                    "ratio_to_local": local_median / median, "same_bytes_as_local": same,
                })  # fmt: skip
        (_, small), (_, large) = folders[min(folders)], folders[max(folders)]
        if large > small:
            rates = {side: (large - small) / (medians[side, large] - medians[side, small]) for side in args.sides}
            for side in args.sides:
                result["steady"].append({
                    "part": part, "side": side, "videos_per_hour": rates[side] * 3600, "ratio_to_local": rates[side] / rates["local"],
                    "start_seconds": medians[side, small] - small / rates[side],
                })  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    m = result["machine"]
    print(f"{m['cpu']}, {m['cores']} cores, {', '.join(m['instruction_sets'])}; clips of 15 s; medians of {args.repeat} rounds\n")
    print("| command | clips | backend | wall s | videos/hour | of local | same bytes as local |")
    print("| --- | ---: | --- | ---: | ---: | ---: | --- |")
    for row in result["summary"]:
        same = "" if row["same_bytes_as_local"] is None else ("yes" if row["same_bytes_as_local"] else "**no**")
        print(f"| {row['part']} | {row['clips']} | {row['side']} | {row['median_seconds']:.1f} | {row['videos_per_hour']:.0f} | "
              f"{row['ratio_to_local']:.2f} | {same} |")  # fmt: skip
    if result["steady"]:
        print("\n| command | backend | steady videos/hour | of local | start s |")
        print("| --- | --- | ---: | ---: | ---: |")
        for row in result["steady"]:
            print(f"| {row['part']} | {row['side']} | {row['videos_per_hour']:.0f} | {row['ratio_to_local']:.2f} | {row['start_seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
