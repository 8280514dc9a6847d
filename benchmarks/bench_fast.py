"""Fast mode against exact mode and zamba, in one run on one card (issue 18).

    bash benchmarks/zamba_setup.sh            # zamba 2.7.2's venv, once
    .venv/bin/python benchmarks/make_card.py bench-out/card
    ZAMBA_PYTHON=~/.cache/kifaru-bench/zamba-venv/bin/python \\
        .venv/bin/python benchmarks/bench_fast.py bench-out/card [--limit N] [--no-zamba]

Three sides on the card's clips, each one ``predict`` process with its defaults and the same
random-weight time_distributed checkpoint (BatchNorm calibrated on photos, as
benchmarks/bench_engine.py makes it): zamba predict, kifaru predict (exact), kifaru predict
--preset fast. For each: wall seconds, videos per hour and their ratio to zamba's, the largest
process's memory (sampled) and wait4's peak RSS. Then, from kifaru's two kifaru_results.jsonl:

- animal/empty calls: a clip is an animal clip for a side when a frame it scored has a box above
  the detector's confidence (0.25); fast mode's calls against exact mode's;
- on exact mode's animal clips, the share of the frames the classifier saw in exact mode that it
  saw in fast mode (a clip fast mode called empty counts 0), mean and lowest;
- the largest probability difference between the two, over the clips both classified;
- exact mode's CSV against zamba's (the same computation: the same numbers).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

import bench_predict  # noqa: E402
from bench_engine import HUB_CODE, make_checkpoint, model_cache, timed_run  # noqa: E402
from machine import machine, onednn_isa  # noqa: E402

CONFIDENCE = 0.25  # time_distributed's megadetector_lite_config.confidence


def results(save_dir: Path) -> dict[str, dict]:
    """The records of a kifaru run by file name."""
    lines = (save_dir / "kifaru_results.jsonl").read_text().splitlines()[1:]
    return {Path(record["item"]).name: record for record in map(json.loads, lines)}


def animal(record: dict) -> bool:
    return any(d[4] > CONFIDENCE for frame in record["frames"] for d in frame["detections"])


def agreement(exact: dict[str, dict], fast: dict[str, dict]) -> dict:
    names = sorted(exact)
    calls = {name: (animal(exact[name]), animal(fast[name])) for name in names}
    same_frames = []
    for name in names:
        if calls[name][0]:
            seen = Counter(exact[name]["frames_used"])
            kept = sum((seen & Counter(fast[name]["frames_used"])).values())
            same_frames.append(kept / max(1, len(exact[name]["frames_used"])))
    both = [n for n in names if exact[n]["outputs"].get("probabilities") and fast[n]["outputs"].get("probabilities")]
    difference = max((abs(a - b) for n in both for a, b in zip(exact[n]["outputs"]["probabilities"], fast[n]["outputs"]["probabilities"])), default=None)
    return {
        "clips": len(names),
        "exact_animal_clips": sum(e for e, _ in calls.values()),
        "calls_agreeing": sum(e == f for e, f in calls.values()),
        "animal_clips_fast_missed": sorted(n for n, (e, f) in calls.items() if e and not f),
        "empty_clips_fast_calls_animal": sorted(n for n, (e, f) in calls.items() if f and not e),
        "decided_by_detector": sum(fast[n]["outputs"].get("decided_by") == "detector" for n in names),
        "same_frames_mean": statistics.mean(same_frames) if same_frames else None,
        "same_frames_lowest": min(same_frames) if same_frames else None,
        "largest_probability_difference": difference,
        "classified_by_both": len(both),
    }


def csv_difference(a: Path, b: Path) -> float | None:
    def rows(path):
        with open(path, newline="") as f:
            return {Path(r.pop("filepath")).name: r for r in csv.DictReader(f)}

    left, right = rows(a), rows(b)
    if sorted(left) != sorted(right):
        return None
    return max(abs(float(left[n][s]) - float(right[n][s])) for n in left for s in left[n] if s != "decided_by")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("card", type=Path, help="a folder made by benchmarks/make_card.py")
    parser.add_argument("--limit", type=int, help="only the first N clips of the card (a trial)")
    parser.add_argument("--no-zamba", dest="zamba", action="store_false")
    parser.add_argument("--zamba-python", default=os.environ.get("ZAMBA_PYTHON", str(Path.home() / ".cache/kifaru-bench/zamba-venv/bin/python")))
    parser.add_argument("--interval", type=float, default=0.5, help="memory sampling interval, seconds")
    parser.add_argument("--work", type=Path, default=ROOT / "bench-out" / "fast")
    parser.add_argument("--json", type=Path, default=ROOT / "bench-out" / "fast.json")
    args = parser.parse_args()
    if args.zamba and not Path(args.zamba_python).exists():
        parser.error(f"{args.zamba_python} is missing: make zamba's venv with benchmarks/zamba_setup.sh, or --no-zamba")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    with open(args.card / "card.csv") as f:
        clips = list(csv.DictReader(f))[: args.limit]
    filepaths = work / "filepaths.csv"
    with open(filepaths, "w", newline="") as f:
        csv.writer(f).writerows([["filepath"], *[[str((args.card / "clips" / c["file"]).resolve())] for c in clips]])
    checkpoint = make_checkpoint(work / "time_distributed_seed1_calibrated.ckpt", "calibrated", ROOT)
    result = {"command": shlex.join([sys.executable, *sys.argv]), "machine": machine(), "onednn_isa": onednn_isa(),
              "clips": len(clips), "made_as_animal": sum(c["content"] == "animal" for c in clips), "runs": {}}
    cache = model_cache(work / "model_cache")
    common = ["--filepaths", str(filepaths), "--checkpoint", str(checkpoint), "-y"]
    kifaru_env = {**os.environ, "PYTHONPATH": str(ROOT), "VIDEO_CACHE_DIR": "", "MODEL_CACHE_DIR": str(cache)}
    # The ONNX exports of the classifier and the detector, made before anything is timed.
    warm = work / "warmup"
    subprocess.run([sys.executable, "-m", "kifaru", "predict", *common, "--dry-run", "--save-dir", str(warm)], env=kifaru_env, check=True, stdout=subprocess.DEVNULL)
    sides = []
    if args.zamba:
        result["zamba_versions"] = bench_predict.zamba_versions(args.zamba_python)
        subprocess.run([args.zamba_python, "-c", HUB_CODE, str(HERE)], check=True, cwd=work, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        zamba_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KIFARU_CLASSIFIER_RUNTIME")}
        zamba_env.update(HF_HUB_OFFLINE="1", VIDEO_CACHE_DIR="", MODEL_CACHE_DIR=str(work / "zamba_model_cache"))
        sides.append(("zamba", [args.zamba_python, "-m", "zamba", "predict", *common], zamba_env))
    for preset in ("exact", "fast"):
        sides.append((preset, [sys.executable, "-m", "kifaru", "predict", *common, "--preset", preset, "--output-format", "csv,megadetector"], kifaru_env))
    for name, command, env in sides:
        save_dir = work / name
        if save_dir.exists():
            shutil.rmtree(save_dir)
        print(f"{name}:", file=sys.stderr)
        run = timed_run([*command, "--save-dir", str(save_dir)], env, save_dir, work / f"{name}.log", args.interval)
        run["videos_per_hour"] = round(len(clips) / run["wall_s"] * 3600, 1)
        result["runs"][name] = run
    runs = result["runs"]
    for name, run in runs.items():
        if "zamba" in runs:
            run["x_zamba"] = round(runs["zamba"]["wall_s"] / run["wall_s"], 2)
    result["agreement"] = agreement(results(work / "exact"), results(work / "fast"))
    if "zamba" in runs:
        result["exact_vs_zamba_csv_largest_difference"] = csv_difference(work / "exact" / "zamba_predictions.csv", work / "zamba" / "zamba_predictions.csv")
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.json.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["machine"]))
    print("| side | wall s | videos/hour | x zamba | largest process MiB (sampled) | peak RSS, wait4, MiB | CPU s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, run in runs.items():
        print(f"| {name} | {run['wall_s']} | {run['videos_per_hour']} | {run.get('x_zamba', '-')} | {run['peak_process_rss_mib']} | {run['wait4_maxrss_mib']} | {run['cpu_s_wait4']} |")
    print(json.dumps(result["agreement"], indent=1))
    if "exact_vs_zamba_csv_largest_difference" in result:
        print(f"exact mode's CSV against zamba's: largest difference {result['exact_vs_zamba_csv_largest_difference']}")
    print(f"wrote {args.json}")
    return 0 if all(r["rc"] == 0 for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
