"""Whole-run speed and memory of ``kifaru predict`` against ``zamba predict``, in the same run, on the same clips.

    ZAMBA_PYTHON=/path/to/zamba-venv/bin/python .venv/bin/python benchmarks/bench_predict.py
        [--clips DIR] [--copies N] [--repeat K] [--checkpoint CKPT] [--sides zamba kifaru]
        [--batch-size N] [--num-workers N] [--zamba-args "..."] [--kifaru-args "..."]
        [--out bench-out/predict.json] [--work bench-out/predict_runs] [--keep-copies]

Makes the 15 s trail-camera clips if needed (benchmarks/make_trailcam_clips.py; only when --clips
is the default folder), then puts --copies copies of every video of --clips in a data folder
(``copy000/<name>``, ``copy001/<name>``, ...: hard links, or symbolic links where hard links
cannot be made) with a filepaths CSV listing them, so that a run is long enough to time. Both
sides get the same command line (each run in a fresh, empty save dir, so kifaru resumes nothing):

    zamba:  $ZAMBA_PYTHON -m zamba predict --data-dir D --filepaths CSV --checkpoint CKPT --save-dir OUT -y
    kifaru: .venv/bin/kifaru predict      --data-dir D --filepaths CSV --checkpoint CKPT --save-dir OUT -y

with the same checkpoint (default bench-out/zamba_models/time_distributed_random.ckpt, the seed-1
random time_distributed checkpoint of benchmarks/zamba_model_reference.py) and no --config, so
each side uses its default time_distributed config (MegadetectorLite frame selection, 16 frames)
and its default num_workers (3) and batch_size (2) unless --num-workers / --batch-size are given
(they then go to both sides). zamba runs with HF_HUB_OFFLINE=1 (its timm backbone asks the model
hub for ImageNet weights otherwise). No frame cache on either side (VIDEO_CACHE_DIR empty).

For each run: the wall time of the whole command (start-up and model loading included, as a user
waits for it) -> videos/hour; and the memory of the whole process tree (the command and all its
descendants: zamba's forkserver and DataLoader workers, kifaru's loading processes), sampled every
--interval seconds (0.2): the peak of the sum of PSS over the tree (the headline: PSS splits each
shared page among the processes that map it, so the sum is what the tree really holds) and the
peak of the sum of RSS (which counts a page shared by N processes N times: torch's libraries
mapped in every worker, fork copy-on-write pages; an upper bound). Also the processes' CPU
seconds (sampled, so a process's last <interval is missed) and zamba's own phases from its log
timestamps (start-up and model loading, then prediction). psutil is used when it is installed,
otherwise the same numbers are read from /proc (Linux).

--repeat K runs each side K times, the order alternating round by round (zamba first in odd
rounds), and reports medians of the wall times and the largest peaks. The outputs are compared:
the first zamba CSV against the first kifaru CSV (same header, same filepath rows in the same
order, largest absolute probability difference), whether they are byte-identical, and whether
each side's CSVs are the same in every round.

Prints markdown tables like the other benchmarks and writes everything (the machine, versions,
the commands, every run with its memory timeline) to --out as JSON. Logs and outputs of each run
stay in --work/<round>_<side>/; the linked copies are removed unless --keep-copies.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from machine import machine as shared_machine  # this folder's (the script's folder is on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_CLIPS = ROOT / "bench-out" / "clips"
DEFAULT_CHECKPOINT = ROOT / "bench-out" / "zamba_models" / "time_distributed_random.ckpt"
VIDEO_SUFFIXES = {".avi", ".mp4", ".asf", ".mov", ".mkv", ".wmv", ".m4v", ".mpg", ".mpeg", ".webm", ".3gp", ".mts"}
PROBABILITY_TOLERANCE = 0.02
MIB = 1024 * 1024
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOGURU_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) \|")

try:
    import psutil
except ImportError:  # kifaru's venv does not need it: read /proc instead
    psutil = None


# -- machine ----------------------------------------------------------------------------------
def machine() -> dict:
    return {
        **shared_machine(),
        "memory_sampler": f"psutil {psutil.__version__}" if psutil else "/proc (psutil not installed)",
    }


def zamba_versions(zamba_python: str) -> dict:
    code = ("import json, torch; from importlib.metadata import version; "
            "print(json.dumps({'zamba': version('zamba'), 'torch': torch.__version__, "
            "'torch_threads': torch.get_num_threads(), 'python': __import__('platform').python_version()}))")
    out = subprocess.run([zamba_python, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# -- memory of a process tree -----------------------------------------------------------------
def _proc_tree(root: int) -> list[int]:
    """root and all its descendants, from /proc/<pid>/stat."""
    parent = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        parent[int(entry.name)] = int(fields[1])
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _proc_sample(pid: int) -> tuple[int, int, float] | None:
    """(rss, pss, cpu seconds) of one process from /proc; None if it is gone."""
    try:
        rss = pss = 0
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return rss, pss, cpu
    except (OSError, ValueError, IndexError):
        return None


class PeriodicSampler(threading.Thread):
    """Calls ``sample`` every ``interval`` seconds, in a thread, until stopped."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.stop_event = threading.Event()

    def sample(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.join()


class TreeSampler(PeriodicSampler):
    """Samples the memory (RSS and PSS, summed over the tree) and CPU time of a process and all
    its descendants every ``interval`` seconds until stopped; keeps the peaks and a timeline."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(pid, interval)
        self.start_time = time.perf_counter()
        self.peak_rss = self.peak_pss = 0
        self.peak_processes = 0
        self.pss_available = True
        self.cpu_by_pid: dict[int, float] = {}
        self.timeline: list[list] = []  # [t s, rss MiB, pss MiB, processes]
        self.samples = 0
        if psutil:
            try:
                self.root = psutil.Process(pid)
            except psutil.NoSuchProcess:
                self.root = None

    def sample(self) -> None:
        rss = pss = 0
        n = 0
        if psutil:
            if self.root is None:
                return
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for process in processes:
                try:
                    info = process.memory_full_info()
                    cpu = process.cpu_times()
                except (psutil.NoSuchProcess, psutil.ZombieProcess):
                    continue
                except psutil.AccessDenied:
                    try:
                        info = process.memory_info()
                        cpu = process.cpu_times()
                    except psutil.Error:
                        continue
                rss += info.rss
                if getattr(info, "pss", None) is None:
                    self.pss_available = False
                else:
                    pss += info.pss
                self.cpu_by_pid[process.pid] = cpu.user + cpu.system
                n += 1
        else:
            for pid in _proc_tree(self.pid):
                got = _proc_sample(pid)
                if got is None:
                    continue
                rss += got[0]
                pss += got[1]
                self.cpu_by_pid[pid] = got[2]
                n += 1
        if n == 0:
            return
        self.samples += 1
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_processes = max(self.peak_processes, n)
        self.timeline.append([round(time.perf_counter() - self.start_time, 2), round(rss / MIB, 1), round(pss / MIB, 1), n])


# -- data -------------------------------------------------------------------------------------
def make_data(clips: list[Path], copies: int, data_dir: Path) -> tuple[Path, list[str], str]:
    """``copies`` linked copies of every clip under data_dir, and a filepaths CSV listing them."""
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    kinds = set()
    filepaths = []
    for k in range(copies):
        folder = data_dir / f"copy{k:03d}"
        folder.mkdir()
        for clip in clips:
            target = folder / clip.name
            try:
                os.link(clip, target)
                kinds.add("hard links")
            except OSError:
                target.symlink_to(clip.resolve())
                kinds.add("symbolic links")
            filepaths.append(f"{folder.name}/{clip.name}")
    csv_path = data_dir.parent / f"{data_dir.name}_filepaths.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filepath"])
        writer.writerows([p] for p in filepaths)
    return csv_path, filepaths, " and ".join(sorted(kinds))


def clip_info(path: Path) -> dict:
    info = {"name": path.name, "bytes": path.stat().st_size}
    try:
        import av

        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            info.update(codec=stream.codec_context.name, width=stream.codec_context.width,
                        height=stream.codec_context.height, fps=float(stream.average_rate or 0),
                        duration_s=round(float(container.duration or 0) / 1e6, 2))
    except Exception as error:  # informative only
        info["probe_error"] = f"{type(error).__name__}: {error}"
    return info


# -- runs -------------------------------------------------------------------------------------
def side_command(side: str, args, data_dir: Path, filepaths: Path, save_dir: Path) -> tuple[list[str], dict]:
    common = ["--data-dir", str(data_dir), "--filepaths", str(filepaths), "--checkpoint", str(args.checkpoint),
              "--save-dir", str(save_dir), "-y"]
    if args.batch_size is not None:
        common += ["--batch-size", str(args.batch_size)]
    if args.num_workers is not None:
        common += ["--num-workers", str(args.num_workers)]
    env = {**os.environ, "VIDEO_CACHE_DIR": ""}
    if side == "zamba":
        env["HF_HUB_OFFLINE"] = "1"
        return [args.zamba_python, "-m", "zamba", "predict", *common, *shlex.split(args.zamba_args)], env
    return [*shlex.split(args.kifaru), "predict", *common, *shlex.split(args.kifaru_args)], env


def zamba_phases(log: Path) -> dict:
    """zamba's phases from its loguru timestamps: start-up (imports, config and file checks, model
    loading) up to 'Starting prediction...', then prediction up to 'Saving out predictions'."""
    first = start = end = None
    for line in ANSI.sub("", log.read_text(errors="replace")).splitlines():
        match = LOGURU_TIME.match(line)
        if not match:
            continue
        stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f")
        first = first or stamp
        if "Starting prediction" in line:
            start = stamp
        elif "Saving out predictions" in line:
            end = stamp
    if not (first and start and end):
        return {}
    return {
        "first_log_to_prediction_start_s": round((start - first).total_seconds(), 2),
        "prediction_s": round((end - start).total_seconds(), 2),
    }


def run_side(side: str, args, data_dir: Path, filepaths: Path, save_dir: Path, n_videos: int) -> dict:
    if save_dir.exists():
        shutil.rmtree(save_dir)
    save_dir.mkdir(parents=True)
    command, env = side_command(side, args, data_dir, filepaths, save_dir)
    log = save_dir.parent / f"{save_dir.name}.log"
    print(f"{side}: {shlex.join(command)}", file=sys.stderr)
    with log.open("w") as out:
        start = time.perf_counter()
        try:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        except OSError as error:  # e.g. no kifaru command yet
            print(f"{side}: cannot start {command[0]}: {error}", file=sys.stderr)
            return {"side": side, "command": shlex.join(command), "rc": None, "error": str(error), "wall_s": None,
                    "videos": n_videos, "videos_per_hour": None, "peak_pss_mib": None, "peak_rss_sum_mib": None,
                    "peak_processes": 0, "cpu_s_sampled": None, "csv": None, "log": str(log)}
        sampler = TreeSampler(process.pid, args.interval)
        sampler.start()
        rc = process.wait()
        wall = time.perf_counter() - start
        sampler.stop()
    result = {
        "side": side,
        "command": shlex.join(command),
        "rc": rc,
        "wall_s": round(wall, 2),
        "videos": n_videos,
        "videos_per_hour": round(n_videos / wall * 3600, 1),
        "peak_pss_mib": round(sampler.peak_pss / MIB, 1) if sampler.pss_available else None,
        "peak_rss_sum_mib": round(sampler.peak_rss / MIB, 1),
        "peak_processes": sampler.peak_processes,
        "cpu_s_sampled": round(sum(sampler.cpu_by_pid.values()), 1),
        "samples": sampler.samples,
        "log": str(log),
        "save_dir": str(save_dir),
        "timeline_t_rss_pss_processes": sampler.timeline,
    }
    if side == "zamba":
        result["phases"] = zamba_phases(log)
    csv_path = save_dir / "zamba_predictions.csv"
    result["csv"] = str(csv_path) if csv_path.exists() else None
    failures = save_dir / "zamba_predictions_failures.csv"
    if failures.exists():
        with failures.open(newline="", encoding="utf-8") as f:
            result["failures"] = max(0, sum(1 for _ in csv.reader(f)) - 1)
    print(f"{side}: rc {rc}, {wall:.1f} s, {result['videos_per_hour']:.0f} videos/h, peak PSS "
          f"{result['peak_pss_mib']} MiB, peak RSS-sum {result['peak_rss_sum_mib']} MiB, "
          f"{sampler.peak_processes} processes", file=sys.stderr)
    if rc != 0:
        print(f"{side} failed (rc {rc}); the end of its log {log}:", file=sys.stderr)
        print("\n".join(ANSI.sub("", log.read_text(errors="replace")).splitlines()[-25:]), file=sys.stderr)
    return result


# -- comparing outputs ------------------------------------------------------------------------
def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def compare(zamba_csv: Path, kifaru_csv: Path) -> dict:
    z_header, z_rows = read_csv(zamba_csv)
    k_header, k_rows = read_csv(kifaru_csv)
    z_paths, k_paths = [r[0] for r in z_rows], [r[0] for r in k_rows]
    result = {
        "same_header": z_header == k_header,
        "zamba_header": z_header,
        "kifaru_header": k_header,
        "zamba_rows": len(z_rows),
        "kifaru_rows": len(k_rows),
        "same_rows": sorted(z_paths) == sorted(k_paths),
        "same_row_order": z_paths == k_paths,
        "rows_only_zamba": sorted(set(z_paths) - set(k_paths))[:20],
        "rows_only_kifaru": sorted(set(k_paths) - set(z_paths))[:20],
        "bytes_identical": zamba_csv.read_bytes() == kifaru_csv.read_bytes(),
    }
    kifaru_by_path = {r[0]: r for r in k_rows}
    columns = {name: i for i, name in enumerate(k_header)}
    worst, where = 0.0, None
    compared = 0
    for row in z_rows:
        other = kifaru_by_path.get(row[0])
        if other is None:
            continue
        for i, name in enumerate(z_header[1:], start=1):
            j = columns.get(name)
            if j is None:
                continue
            try:
                diff = abs(float(row[i]) - float(other[j]))
            except ValueError:
                continue
            compared += 1
            if diff > worst:
                worst, where = diff, {"filepath": row[0], "column": name, "zamba": row[i], "kifaru": other[j]}
    result.update(values_compared=compared, max_abs_diff=worst, max_abs_diff_at=where,
                  within_tolerance=worst <= PROBABILITY_TOLERANCE)
    return result


def same_across_rounds(runs: list[dict]) -> bool | None:
    data = [Path(r["csv"]).read_bytes() for r in runs if r.get("csv")]
    return None if len(data) < 2 else all(d == data[0] for d in data)


# -- report -----------------------------------------------------------------------------------
def report(result: dict) -> None:
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, load average "
          f"{m['load_average_at_start']} at start, {m.get('load_average_at_end')} at end; python {m['python']}, "
          f"torch {m['torch']} ({m['torch_threads']} threads), onnxruntime {m['onnxruntime']}; zamba side: "
          f"{result.get('zamba_versions')}; memory sampled every {result['interval_s']} s with {m['memory_sampler']}")
    print(f"videos: {result['videos']} ({result['copies']} copies of {', '.join(c['name'] for c in result['clips'])}, "
          f"{result['links']}); --repeat {result['repeat']} (median wall time, largest peaks)")
    s = result["summary"]
    for side, summary in s.items():
        if "wall_s" not in summary:
            print(f"\n**{side}: every run failed** (see the logs in the JSON)")
    sides = [side for side in ("zamba", "kifaru") if "wall_s" in s.get(side, {})]
    if not sides:
        return
    print("\n| | " + " | ".join(sides) + " |")
    print("| --- |" + " ---: |" * len(sides))

    def row(title, fmt):
        print(f"| {title} | " + " | ".join(fmt(s[side]) for side in sides) + " |")

    row("wall s (median)", lambda x: f"{x['wall_s']:.1f}")
    row("videos/hour", lambda x: f"{x['videos_per_hour']:.0f}")
    if len(sides) == 2:
        row("speed-up vs zamba", lambda x: f"**{s['zamba']['wall_s'] / x['wall_s']:.2f}x**")
    row("peak memory, PSS summed over the process tree, MiB", lambda x: f"**{x['peak_pss_mib']}**")
    row("peak memory, RSS summed over the process tree, MiB (counts shared pages once per process)",
        lambda x: f"{x['peak_rss_sum_mib']}")
    row("processes in the tree (most at once)", lambda x: str(x["peak_processes"]))
    row("CPU s, all processes (sampled)", lambda x: f"{x['cpu_s_sampled']:.0f}")
    row("rows in zamba_predictions.csv", lambda x: str(x["rows"]))
    row("same CSV in every round", lambda x: {True: "yes", False: "**no**", None: "-"}[x["same_across_rounds"]])
    if "zamba" in sides and s["zamba"].get("phases"):
        p = s["zamba"]["phases"]
        print(f"\nzamba's log (first run): {p['first_log_to_prediction_start_s']:.1f} s from its first log line to "
              f"'Starting prediction', {p['prediction_s']:.1f} s predicting; the rest of the wall time is python "
              f"start-up and imports before the first log line, and writing out.")
    print("\n| round | side | wall s | videos/hour | peak PSS MiB | peak RSS-sum MiB | CPU s | rc |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in result["runs"]:
        if r["wall_s"] is None:
            print(f"| {r['round']} | {r['side']} | - | - | - | - | - | {r.get('error')} |")
            continue
        print(f"| {r['round']} | {r['side']} | {r['wall_s']:.1f} | {r['videos_per_hour']:.0f} | {r['peak_pss_mib']} | "
              f"{r['peak_rss_sum_mib']} | {r['cpu_s_sampled']:.0f} | {r['rc']} |")
    c = result.get("comparison")
    if c:
        if "error" in c:
            print(f"\noutputs not compared: {c['error']}")
        else:
            print(f"\noutputs (first zamba run vs first kifaru run): same columns: {'yes' if c['same_header'] else 'NO'}; "
                  f"same rows: {'yes' if c['same_rows'] else 'NO'} ({c['zamba_rows']} vs {c['kifaru_rows']}; same order: "
                  f"{'yes' if c['same_row_order'] else 'no'}); largest probability difference {c['max_abs_diff']:.5f} "
                  f"({'within' if c['within_tolerance'] else 'OVER'} {PROBABILITY_TOLERANCE}); byte-identical: "
                  f"{'yes' if c['bytes_identical'] else 'no'}")
    print("\nPSS is the headline: RSS summed over the workers counts every shared page (torch's libraries, "
          "copy-on-write memory of forked workers) once per process.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, help="folder of videos (its top level)")
    parser.add_argument("--copies", type=int, default=1, help="how many linked copies of every clip to predict on")
    parser.add_argument("--repeat", type=int, default=1, help="runs per side, the order alternating")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--sides", nargs="+", choices=("zamba", "kifaru"), default=["zamba", "kifaru"])
    parser.add_argument("--batch-size", type=int, help="given to both sides (default: each side's own, 2)")
    parser.add_argument("--num-workers", type=int, help="given to both sides (default: each side's own, 3)")
    parser.add_argument("--zamba-args", default="", help="more options for zamba predict only")
    parser.add_argument("--kifaru-args", default="", help="more options for kifaru predict only")
    parser.add_argument("--interval", type=float, default=0.2, help="memory sampling interval, seconds")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "predict.json")
    parser.add_argument("--work", type=Path, default=ROOT / "bench-out" / "predict_runs",
                        help="the linked copies, and each run's save dir and log")
    parser.add_argument("--keep-copies", action="store_true", help="keep the linked copies of the clips")
    parser.add_argument("--kifaru", default=str(Path(sys.executable).with_name("kifaru")),
                        help="the kifaru command (default: the one next to this python)")
    parser.add_argument(
        "--zamba-python",
        default=os.environ.get("ZAMBA_PYTHON", str(Path.home() / ".cache/kifaru-bench/zamba-venv/bin/python")),
        help="python of a venv with zamba 2.7.2 (make one with benchmarks/zamba_setup.sh)",
    )
    args = parser.parse_args()
    args.checkpoint = args.checkpoint.resolve()
    if not args.checkpoint.exists():
        print(f"{args.checkpoint} is missing: make it with\n  HF_HUB_OFFLINE=1 $ZAMBA_PYTHON "
              f"benchmarks/zamba_model_reference.py", file=sys.stderr)
        return 2

    if args.clips.resolve() == DEFAULT_CLIPS.resolve():
        subprocess.run([sys.executable, str(HERE / "make_trailcam_clips.py"), str(args.clips)], check=True,
                       stdout=sys.stderr)
    clips = sorted(p for p in args.clips.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not clips:
        print(f"no videos in {args.clips}", file=sys.stderr)
        return 2

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "data"
    filepaths, names, links = make_data(clips, args.copies, data_dir)
    n_videos = len(names)
    result = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": machine(),
        "zamba_versions": zamba_versions(args.zamba_python) if "zamba" in args.sides else None,
        "checkpoint": str(args.checkpoint),
        "clips": [clip_info(c) for c in clips],
        "copies": args.copies,
        "links": links,
        "videos": n_videos,
        "repeat": args.repeat,
        "interval_s": args.interval,
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "runs": [],
    }
    started = time.perf_counter()
    try:
        for round_ in range(1, args.repeat + 1):
            order = args.sides if round_ % 2 == 1 else list(reversed(args.sides))
            for side in order:
                run = run_side(side, args, data_dir, filepaths, work / f"round{round_}_{side}", n_videos)
                run["round"] = round_
                result["runs"].append(run)
    finally:
        if not args.keep_copies:
            shutil.rmtree(data_dir, ignore_errors=True)

    summary = {}
    for side in args.sides:
        runs = [r for r in result["runs"] if r["side"] == side]
        ok = [r for r in runs if r["rc"] == 0]
        if not ok:
            summary[side] = {"failed_runs": len(runs)}
            continue
        wall = statistics.median(r["wall_s"] for r in ok)
        rows = len(read_csv(Path(ok[0]["csv"]))[1]) if ok[0].get("csv") else None
        pss = [r["peak_pss_mib"] for r in ok if r["peak_pss_mib"] is not None]
        summary[side] = {
            "wall_s": wall,
            "videos_per_hour": round(n_videos / wall * 3600, 1),
            "peak_pss_mib": max(pss) if pss else None,
            "peak_rss_sum_mib": max(r["peak_rss_sum_mib"] for r in ok),
            "peak_processes": max(r["peak_processes"] for r in ok),
            "cpu_s_sampled": statistics.median(r["cpu_s_sampled"] for r in ok),
            "rows": rows,
            "failed_runs": len(runs) - len(ok),
            "same_across_rounds": same_across_rounds(ok),
            "phases": ok[0].get("phases"),
        }
    result["summary"] = summary
    firsts = {side: next((r for r in result["runs"] if r["side"] == side and r.get("csv")), None) for side in args.sides}
    if len(args.sides) == 2:
        if firsts["zamba"] and firsts["kifaru"]:
            result["comparison"] = compare(Path(firsts["zamba"]["csv"]), Path(firsts["kifaru"]["csv"]))
        else:
            missing = [side for side, run in firsts.items() if run is None]
            result["comparison"] = {"error": f"no zamba_predictions.csv from {' or '.join(missing)}"}
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.out} ({result['wall_s']:.0f} s)")
    return 0 if all(r["rc"] == 0 for r in result["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
