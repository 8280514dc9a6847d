"""kifaru before and after the engine, against zamba, in one run: ``predict`` (both classifier
runtimes) and ``detect``, on one CPU whose model and instruction sets the report names.

    ZAMBA_PYTHON=/path/to/zamba-venv/bin/python .venv/bin/python benchmarks/bench_engine.py
        [--before REV] [--after TREE] [--repeat 2] [--quick] [--parts predict detect]
        [--runtimes onnxruntime pytorch] [--checkpoint CKPT | --calibrated] [--no-zamba] [--no-snapshot-after]
        [--detect-copies 2] [--detect-num-workers cpu|default|N] [--json bench-out/engine.json]

The two kifaru versions run from the same venv (this python), each with ``PYTHONPATH`` at its own
source tree and its working directory outside both, so ``import kifaru`` (checked before any run,
and in the spawned workers, which inherit both) takes that tree's code:

- BEFORE: the git revision --before (default eead3a8, the last commit before the engine), checked
  out with ``git worktree add --detach`` at /tmp/kifaru-before-<rev> (made once; our tree is not
  touched);
- AFTER: --after (default: this working tree), run from a copy of its kifaru/ made at the start
  (--no-snapshot-after: from the tree itself), so that every round runs the same code while others
  edit the tree.

predict: the clips of ``benchmarks/make_trailcam_clips.py`` (15 s: 720p and 1080p h264, 720p
MJPEG; made if missing) and the real 15 s clip they are made from
(../shared/data/real-videos/chimps_pool_320x180_30fps_15s.mp4, when present): 4 clips, 2 with
--quick. Every side runs ``predict --data-dir D --filepaths CSV --checkpoint CKPT --save-dir OUT -y``
with its defaults (time_distributed config, MegadetectorLite frame selection, 3 workers, batch 2),
each run in a fresh save dir. zamba runs with ``HF_HUB_OFFLINE=1`` (a random safetensors file
stands in for timm's ImageNet weights in the hub cache, as benchmarks/zamba_model_reference.py
does). kifaru runs once per classifier runtime, ``KIFARU_CLASSIFIER_RUNTIME`` = ``onnxruntime`` (a
failed export fails the run instead of falling back) and ``pytorch``. The checkpoint: the seed-1
time_distributed checkpoint of tests/models/random_checkpoint.py (written by the BEFORE tree's
code), or with --calibrated the same weights with BatchNorm statistics calibrated on photographs
(as a trained network's are). Each kifaru version has its own model cache (the detector weights
hard-linked from the user cache), and a dry run on every clip makes its ONNX exports before the
timed runs (the warm-up's time is reported apart).

Rounds: each of --repeat rounds runs every case once, zamba, before/onnxruntime,
after/onnxruntime, before/pytorch, after/pytorch, the order reversed in even rounds (before and
after stay neighbours). Figures: medians of the wall times (the whole command, start-up included);
ratio = zamba's median wall time / the case's; also the median of the per-round ratios.

Memory, per run: the largest single process (the peak of any one process's RSS, sampled from
/proc every --interval s over the whole process tree: the command and all its descendants, as
they are alive); the kernel's exact peak RSS from ``wait4`` (the command and the descendants
it reaped: its workers; a process left to init, like zamba's forkserver, is not in it); and the
peak of the PSS summed over the tree (what the tree holds, shared pages counted once).

Outputs: before's and after's ``zamba_predictions.csv`` byte-identical (per runtime, every round),
and each against zamba's (columns, rows, largest probability difference).

detect: ``detect --data-dir D --save-dir OUT -q`` on --detect-copies linked copies of the same
clips, before and after, alternating; videos/hour. ``--num-workers`` (--detect-num-workers: the
number of cores by default) is passed to a version only when its ``detect --help`` offers it.

Prints markdown tables to stdout (progress to stderr) and writes everything to --json. The figures
of a machine that others use at the same time are not for docs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import bench_predict  # this folder's (the script's folder is on sys.path)
from machine import machine, onednn_isa

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_BEFORE = "eead3a8"
DEFAULT_CLIPS = ROOT / "bench-out" / "clips"
SOURCE_CLIP = ROOT.parent / "shared" / "data" / "real-videos" / "chimps_pool_320x180_30fps_15s.mp4"
MADE_CLIPS = ("trailcam_720p_h264.mp4", "trailcam_1080p_h264.mp4", "trailcam_720p_mjpeg.avi")
QUICK_CLIPS = ("trailcam_720p_h264.mp4", "trailcam_720p_mjpeg.avi")
RUNTIMES = ("onnxruntime", "pytorch")
MIB = 1024 * 1024
CHECKPOINT_CODE = """
import sys
from pathlib import Path
from kifaru.models.checkpoint import write_checkpoint
from kifaru.models.official import video_model_entry
from kifaru.models.time_distributed import TimeDistributedEfficientNet
from tests.models.random_checkpoint import TIME_DISTRIBUTED_HPARAMS, calibrate_batchnorm, photo_frames, random_state_dict
species = list(video_model_entry("time_distributed").species)
model = TimeDistributedEfficientNet(num_classes=len(species), num_frames=TIME_DISTRIBUTED_HPARAMS["num_frames"])
model.load_state_dict(random_state_dict(model, 1))
if sys.argv[2] == "calibrated":
    calibrate_batchnorm(model, photo_frames(32, 240, 426))
write_checkpoint(Path(sys.argv[1]), model, "TimeDistributedEfficientNet", species, TIME_DISTRIBUTED_HPARAMS)
"""
HUB_CODE = "import sys; sys.path.insert(0, sys.argv[1]); from zamba_model_reference import fake_hub_weights; fake_hub_weights()"


@dataclass
class Version:
    """One kifaru version: a source tree run with this venv."""

    name: str  # "before" or "after"
    tree: Path
    model_cache: Path

    def env(self, runtime: str | None = None) -> dict:
        env = {**os.environ, "PYTHONPATH": str(self.tree), "VIDEO_CACHE_DIR": "", "MODEL_CACHE_DIR": str(self.model_cache)}
        if runtime:
            env["KIFARU_CLASSIFIER_RUNTIME"] = runtime
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "kifaru", *args]


# -- memory of a process tree -----------------------------------------------------------------
class Sampler(bench_predict.PeriodicSampler):
    """Samples a process tree every ``interval`` s: the largest single process's RSS (and which
    it was), the RSS and PSS summed over the tree, and CPU seconds per process."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(pid, interval)
        self.peak_process_rss, self.peak_process = 0, ""
        self.peak_rss_sum = self.peak_pss_sum = self.peak_processes = 0
        self.cpu_by_pid: dict[int, float] = {}

    def sample(self) -> None:
        rss_sum = pss_sum = n = 0
        for pid in bench_predict._proc_tree(self.pid):
            got = bench_predict._proc_sample(pid)
            if got is None:
                continue
            rss, pss, cpu = got
            rss_sum, pss_sum, n = rss_sum + rss, pss_sum + pss, n + 1
            self.cpu_by_pid[pid] = cpu
            if rss > self.peak_process_rss:
                self.peak_process_rss, self.peak_process = rss, _cmdline(pid) or self.peak_process
        self.peak_rss_sum = max(self.peak_rss_sum, rss_sum)
        self.peak_pss_sum = max(self.peak_pss_sum, pss_sum)
        self.peak_processes = max(self.peak_processes, n)


def _cmdline(pid: int) -> str:
    """A short name for the process: its command, or what kind of multiprocessing child it is."""
    try:
        text = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ").strip()
    except OSError:
        return ""
    if "multiprocessing.spawn" in text:
        return "a spawned worker"
    if "multiprocessing.forkserver" in text:  # the forkserver and the workers forked from it look alike
        return "the forkserver or a worker forked from it"
    words = text.split()
    return " ".join([Path(words[0]).name, *words[1:4]])[:60] if words else ""


def timed_run(command: list[str], env: dict, cwd: Path, log: Path, interval: float) -> dict:
    """Runs ``command`` (output to ``log``), timing it and sampling its process tree."""
    cwd.mkdir(parents=True, exist_ok=True)
    print(f"  $ {shlex.join(command)}", file=sys.stderr)
    with log.open("w") as out:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        sampler = Sampler(process.pid, interval)
        sampler.start()
        try:
            # wait4: the exact peak RSS of the command and of the descendants it reaped
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            raise
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop()
    result = {
        "command": shlex.join(command),
        "rc": process.returncode,
        "wall_s": round(wall, 2),
        "peak_process_rss_mib": round(sampler.peak_process_rss / MIB, 1),
        "peak_process": sampler.peak_process,
        "wait4_maxrss_mib": round(usage.ru_maxrss * 1024 / MIB, 1),  # Linux: KiB
        "peak_pss_sum_mib": round(sampler.peak_pss_sum / MIB, 1),
        "peak_rss_sum_mib": round(sampler.peak_rss_sum / MIB, 1),
        "peak_processes": sampler.peak_processes,
        # sampled: every process of the tree, less each one's last <interval; wait4: exact, reaped ones only
        "cpu_s_sampled": round(sum(sampler.cpu_by_pid.values()), 1),
        "cpu_s_wait4": round(usage.ru_utime + usage.ru_stime, 1),
        "log": str(log),
    }
    print(f"    rc {result['rc']}, {wall:.1f} s, largest process {result['peak_process_rss_mib']} MiB "
          f"({result['peak_process']}), wait4 {result['wait4_maxrss_mib']} MiB", file=sys.stderr)
    if process.returncode != 0:
        print("\n".join(bench_predict.ANSI.sub("", log.read_text(errors="replace")).splitlines()[-20:]), file=sys.stderr)
    return result


# -- setting up -------------------------------------------------------------------------------
def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def before_tree(revision: str, tree: Path | None) -> Path:
    """A worktree of ``revision`` (made with ``git worktree add --detach`` when missing)."""
    sha = git("rev-parse", "--verify", revision + "^{commit}")
    tree = tree or Path("/tmp") / f"kifaru-before-{sha[:7]}"
    if not tree.exists():
        git("worktree", "add", "--detach", str(tree), sha)
    elif git("rev-parse", "HEAD", cwd=tree) != sha:
        raise SystemExit(f"{tree} is not at {revision} ({sha[:12]}): give another --before-tree")
    return tree


def snapshot(tree: Path, folder: Path) -> Path:
    """A copy of ``tree``'s kifaru package under ``folder``: every AFTER run then runs the same code
    while others keep editing the working tree."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(tree / "kifaru", folder / "kifaru", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def check_import(version: Version, cwd: Path) -> str:
    """Where ``import kifaru`` resolves for the version; exits when it is not its tree."""
    cwd.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-c", "import kifaru; print(kifaru.__file__)"], env=version.env(),
                         cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()
    if not Path(out).resolve().is_relative_to(version.tree.resolve()):
        raise SystemExit(f"{version.name}: import kifaru gives {out}, not {version.tree}")
    return out


def tree_state(tree: Path) -> dict:
    state = {"tree": str(tree), "commit": git("rev-parse", "HEAD", cwd=tree)}
    changed = git("status", "--porcelain", "--untracked-files=normal", "--", "kifaru", cwd=tree).splitlines()
    state["changed_files_under_kifaru"] = len(changed)
    return state


def model_cache(folder: Path) -> Path:
    """A fresh model cache with the detector weights (and their check mark) linked from the user's."""
    from_user = Path(os.environ.get("MODEL_CACHE_DIR") or Path.home() / ".cache" / "kifaru" / "models")
    folder.mkdir(parents=True, exist_ok=True)
    for weights in from_user.glob("yolox_*.pth"):
        for source in (weights, weights.with_name(weights.name + ".verified")):
            target = folder / source.name
            if source.exists() and not target.exists():
                try:
                    os.link(source, target)  # the same inode: the check mark's mtime still matches
                except OSError:
                    shutil.copy2(source, target)
    return folder


def make_checkpoint(path: Path, kind: str, tree: Path) -> Path:
    if not path.exists():
        print(f"writing the {kind} checkpoint {path} (the code of {tree})", file=sys.stderr)
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-c", CHECKPOINT_CODE, str(path), kind], cwd=tree, check=True,
                       env={**os.environ, "PYTHONPATH": str(tree)})
    return path


def predict_clips(args) -> list[Path]:
    if args.clips.resolve() == DEFAULT_CLIPS.resolve():
        subprocess.run([sys.executable, str(HERE / "make_trailcam_clips.py"), str(args.clips)], check=True,
                       stdout=sys.stderr)
    names = QUICK_CLIPS if args.quick else MADE_CLIPS
    clips = [args.clips / name for name in names if (args.clips / name).exists()]
    if not args.quick and SOURCE_CLIP.exists():
        clips.append(SOURCE_CLIP)
    if not clips:
        raise SystemExit(f"no clips in {args.clips}")
    return clips


def detect_has_num_workers(version: Version, cwd: Path) -> bool:
    help_text = subprocess.run(version.command("detect", "--help"), env=version.env(), cwd=cwd,
                               capture_output=True, text=True).stdout
    return "--num-workers" in help_text


# -- predict ----------------------------------------------------------------------------------
def predict_part(args, versions: list[Version], checkpoint: Path, clips: list[Path], work: Path) -> dict:
    filepaths, names, _ = bench_predict.make_data(clips, 1, work / "data")
    data_dir = work / "data"
    common = ["--data-dir", str(data_dir), "--filepaths", str(filepaths), "--checkpoint", str(checkpoint), "-y"]
    warmups = {}
    for version in versions:  # the ONNX exports of classifier and detector, into the version's cache
        print(f"warm-up: {version.name} (dry run on every clip)", file=sys.stderr)
        run_dir = work / f"warmup_{version.name}"
        warmups[version.name] = timed_run(
            version.command("predict", *common, "--dry-run", "--batch-size", str(len(names)), "--save-dir", str(run_dir)),
            version.env("onnxruntime"), run_dir, work / f"warmup_{version.name}.log", args.interval)
    cases = [("zamba", None)] if args.zamba else []
    cases += [(v.name, runtime) for runtime in args.runtimes for v in versions]
    runs = []
    for round_ in range(1, args.repeat + 1):
        for side, runtime in cases if round_ % 2 else list(reversed(cases)):
            label = side if runtime is None else f"{side}/{runtime}"
            print(f"predict round {round_}: {label}", file=sys.stderr)
            save_dir = work / f"round{round_}_{label.replace('/', '_')}"
            if save_dir.exists():
                shutil.rmtree(save_dir)
            if side == "zamba":
                env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KIFARU_CLASSIFIER_RUNTIME")}
                env.update(HF_HUB_OFFLINE="1", VIDEO_CACHE_DIR="", MODEL_CACHE_DIR=str(work / "zamba_model_cache"))
                command = [args.zamba_python, "-m", "zamba", "predict", *common, "--save-dir", str(save_dir)]
            else:
                version = next(v for v in versions if v.name == side)
                env, command = version.env(runtime), version.command("predict", *common, "--save-dir", str(save_dir))
            run = timed_run(command, env, save_dir, save_dir.with_suffix(".log"), args.interval)
            csv_path = save_dir / "zamba_predictions.csv"
            run.update(round=round_, case=label, csv=str(csv_path) if csv_path.exists() else None,
                       videos=len(names), runtime_seen=runtime_seen(save_dir))
            if runtime and run["rc"] == 0 and runtime not in (run["runtime_seen"] or "").lower():
                print(f"    WARNING: asked for {runtime}, the run reports {run['runtime_seen']!r}", file=sys.stderr)
            runs.append(run)
    return {"videos": len(names), "clips": [bench_predict.clip_info(c) for c in clips], "warmups": warmups,
            "runs": runs, "cases": [c if r is None else f"{c}/{r}" for c, r in cases],
            **summarize_predict(runs, args.runtimes, args.zamba)}


def runtime_seen(save_dir: Path) -> str | None:
    """The runtime the run says it used: predict_configuration.yaml's runtime line, else the log's."""
    for source in (save_dir / "predict_configuration.yaml", save_dir.with_suffix(".log")):
        if source.exists():
            for line in bench_predict.ANSI.sub("", source.read_text(errors="replace")).splitlines():
                if "runtime" in line.lower() and ("ONNX" in line or "PyTorch" in line or "pytorch" in line
                                                  or "onnxruntime" in line):
                    return line.strip()[:120]
    return None


def median_summary(runs: list[dict]) -> dict:
    ok = [r for r in runs if r["rc"] == 0]
    if not ok:
        return {"failed_runs": len(runs)}
    wall = statistics.median(r["wall_s"] for r in ok)
    return {
        "wall_s": wall,
        "videos_per_hour": round(ok[0]["videos"] / wall * 3600, 1),
        "peak_process_rss_mib": max(r["peak_process_rss_mib"] for r in ok),
        "wait4_maxrss_mib": max(r["wait4_maxrss_mib"] for r in ok),
        "peak_pss_sum_mib": max(r["peak_pss_sum_mib"] for r in ok),
        "cpu_s_sampled": statistics.median(r["cpu_s_sampled"] for r in ok),
        "failed_runs": len(runs) - len(ok),
    }


def same_bytes(paths: list[str | None]) -> bool | None:
    if len(paths) < 2 or None in paths:
        return None
    data = [Path(p).read_bytes() for p in paths]
    return all(d == data[0] for d in data)


def summarize_predict(runs: list[dict], runtimes: list[str], with_zamba: bool) -> dict:
    by_case: dict[str, list[dict]] = {}
    for run in runs:
        by_case.setdefault(run["case"], []).append(run)
    summary = {case: median_summary(case_runs) for case, case_runs in by_case.items()}
    zamba = summary.get("zamba", {})
    for case, s in summary.items():
        if case == "zamba" or "wall_s" not in s or "wall_s" not in zamba:
            continue
        s["ratio"] = round(zamba["wall_s"] / s["wall_s"], 2)
        paired = [z["wall_s"] / k["wall_s"] for z, k in zip(by_case["zamba"], by_case[case]) if z["rc"] == 0 == k["rc"]]
        s["ratio_median_of_rounds"] = round(statistics.median(paired), 2) if paired else None
    checks = {}
    for runtime in runtimes:
        before, after = by_case.get(f"before/{runtime}", []), by_case.get(f"after/{runtime}", [])
        checks[runtime] = {"before_after_byte_identical": same_bytes([r["csv"] for r in before + after])}
        first = next((r["csv"] for r in after + before if r["csv"]), None)
        zamba_csv = next((r["csv"] for r in by_case.get("zamba", []) if r["csv"]), None)
        if with_zamba and first and zamba_csv:
            checks[runtime]["vs_zamba"] = bench_predict.compare(Path(zamba_csv), Path(first))
    onnx = next((r["csv"] for r in by_case.get("after/onnxruntime", []) if r["csv"]), None)
    torch_csv = next((r["csv"] for r in by_case.get("after/pytorch", []) if r["csv"]), None)
    if onnx and torch_csv:
        checks["onnxruntime_vs_pytorch"] = bench_predict.compare(Path(torch_csv), Path(onnx))
    return {"summary": summary, "checks": checks}


# -- detect -----------------------------------------------------------------------------------
def detect_part(args, versions: list[Version], clips: list[Path], work: Path) -> dict:
    _, names, _ = bench_predict.make_data(clips, args.detect_copies, work / "data")
    data_dir = work / "data"
    workers = os.cpu_count() if args.detect_num_workers == "cpu" else args.detect_num_workers
    extra = {}
    for version in versions:
        offered = detect_has_num_workers(version, work)
        extra[version.name] = ["--num-workers", str(workers)] if offered and workers != "default" else []
    runs = []
    for round_ in range(1, args.repeat + 1):
        for version in versions if round_ % 2 else list(reversed(versions)):
            print(f"detect round {round_}: {version.name}", file=sys.stderr)
            save_dir = work / f"round{round_}_{version.name}"
            if save_dir.exists():
                shutil.rmtree(save_dir)
            command = version.command("detect", "--data-dir", str(data_dir), "--save-dir", str(save_dir), "-q",
                                      *extra[version.name])
            run = timed_run(command, version.env(), save_dir, save_dir.with_suffix(".log"), args.interval)
            run.update(round=round_, case=version.name, videos=len(names), save_dir=str(save_dir))
            runs.append(run)
    summary = {v.name: median_summary([r for r in runs if r["case"] == v.name]) for v in versions}
    if all("wall_s" in summary[v.name] for v in versions):
        summary["after"]["speed_up_vs_before"] = round(summary["before"]["wall_s"] / summary["after"]["wall_s"], 2)
    return {"videos": len(names), "copies": args.detect_copies, "extra_args": extra, "runs": runs,
            "summary": summary, "checks": compare_detect(runs)}


def compare_detect(runs: list[dict]) -> dict:
    """Before's first outputs against after's: detection_summary.csv bytes, detections.json's images."""
    firsts = {case: next((Path(r["save_dir"]) for r in runs if r["case"] == case and r["rc"] == 0), None)
              for case in ("before", "after")}
    if None in firsts.values():
        return {"error": "a version has no successful detect run"}
    out = {}
    for name in ("detection_summary.csv",):
        paths = [firsts[c] / name for c in ("before", "after")]
        out[name + " byte-identical"] = same_bytes([str(p) if p.exists() else None for p in paths])

    def images(folder: Path):
        path = folder / "detections.json"
        if not path.exists():
            return None
        return sorted(json.loads(path.read_text())["images"], key=lambda entry: entry.get("file", ""))

    before, after = images(firsts["before"]), images(firsts["after"])
    out["detections.json images identical"] = None if before is None or after is None else before == after
    return out


# -- report -----------------------------------------------------------------------------------
def yes_no(value) -> str:
    return {True: "yes", False: "**NO**", None: "-"}[value]


def report(result: dict) -> None:
    m = result["machine"]
    print(f"## bench_engine: kifaru before ({result['versions']['before']['commit'][:7]}) and after "
          f"({result['versions']['after']['commit'][:7]}, {result['versions']['after']['changed_files_under_kifaru']} "
          f"files changed under kifaru/) against zamba\n")
    print("| machine | |\n| --- | --- |")
    print(f"| CPU | {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB |")
    print(f"| instruction sets | {', '.join(m['instruction_sets']) or '-'}; "
          f"no {', '.join(n for n in ('AVX-512', 'AVX-512 VNNI', 'AMX') if n not in m['instruction_sets']) or '-'} |")
    print(f"| PyTorch's CPU kernels / oneDNN's ISA | {m['torch_cpu_capability']} / {result.get('onednn_isa') or '-'} |")
    print(f"| versions | python {m['python']}, torch {m['torch']} ({m['torch_threads']} threads), onnxruntime "
          f"{m['onnxruntime']}; zamba side: {result.get('zamba_versions') or '-'} |")
    print(f"| load average | {m['load_average_at_start']} at start, {m.get('load_average_at_end')} at end |")
    print(f"| checkpoint | {result['checkpoint_kind']}: {result['checkpoint']} |")
    predict = result.get("predict")
    if predict:
        names = ", ".join(c["name"] for c in predict["clips"])
        print(f"\n### predict: {predict['videos']} videos ({names}), --repeat {result['repeat']}, medians\n")
        print("| case | wall s | videos/hour | zamba/kifaru | (median of rounds) | largest process MiB (sampled) "
              "| wait4 peak RSS MiB | PSS summed MiB | CPU s | runtime it reports |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for case in predict["cases"]:
            s = predict["summary"].get(case, {})
            if "wall_s" not in s:
                print(f"| {case} | failed | | | | | | | | |")
                continue
            seen = next((r["runtime_seen"] for r in predict["runs"] if r["case"] == case and r["runtime_seen"]), None)
            runtime = case.partition("/")[2]
            if runtime and runtime not in (seen or "").lower():
                seen = f"**{seen or 'none'} (asked for {runtime})**"
            ratio = f"**{s['ratio']:.2f}x**" if "ratio" in s else "-"
            rounds = f"{s['ratio_median_of_rounds']:.2f}x" if s.get("ratio_median_of_rounds") else "-"
            print(f"| {case} | {s['wall_s']:.1f} | {s['videos_per_hour']:.0f} | {ratio} | {rounds} | "
                  f"{s['peak_process_rss_mib']:.0f} | {s['wait4_maxrss_mib']:.0f} | {s['peak_pss_sum_mib']:.0f} | "
                  f"{s['cpu_s_sampled']:.0f} | {seen or '-'} |")
        for name, w in predict["warmups"].items():
            print(f"\nwarm-up {name} (dry run making the ONNX exports, untimed in the table): {w['wall_s']:.1f} s, rc {w['rc']}",
                  end="")
        print("\n\n| check | onnxruntime | pytorch |\n| --- | --- | --- |")
        checks = predict["checks"]

        def cell(runtime: str, key: str):
            c = checks.get(runtime, {})
            if key == "identical":
                return yes_no(c.get("before_after_byte_identical"))
            z = c.get("vs_zamba")
            if not z:
                return "-"
            return (f"columns {yes_no(z['same_header'])}, rows {yes_no(z['same_rows'] and z['same_row_order'])}, "
                    f"max diff {z['max_abs_diff']:.5f}, bytes {yes_no(z['bytes_identical'])}")

        print(f"| before and after zamba_predictions.csv byte-identical (every round) | {cell('onnxruntime', 'identical')} "
              f"| {cell('pytorch', 'identical')} |")
        print(f"| kifaru (after) against zamba | {cell('onnxruntime', 'zamba')} | {cell('pytorch', 'zamba')} |")
        if "onnxruntime_vs_pytorch" in checks:
            print(f"\nafter: ONNX Runtime's CSV against PyTorch's: largest probability difference "
                  f"{checks['onnxruntime_vs_pytorch']['max_abs_diff']:.2e}")
        print("\n| round | case | wall s | largest process MiB | which | wait4 MiB | rc |\n| ---: | --- | ---: | ---: | --- | ---: | ---: |")
        for r in predict["runs"]:
            print(f"| {r['round']} | {r['case']} | {r['wall_s']:.1f} | {r['peak_process_rss_mib']:.0f} | {r['peak_process']} "
                  f"| {r['wait4_maxrss_mib']:.0f} | {r['rc']} |")
    detect = result.get("detect")
    if detect:
        print(f"\n### detect: {detect['videos']} videos ({detect['copies']} linked copies of the clips), medians\n")
        print("| version | extra options | wall s | videos/hour | vs before | largest process MiB | PSS summed MiB | CPU s |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, s in detect["summary"].items():
            if "wall_s" not in s:
                print(f"| {name} | | failed | | | | | |")
                continue
            gain = f"**{s['speed_up_vs_before']:.2f}x**" if "speed_up_vs_before" in s else "1.00x"
            print(f"| {name} | {' '.join(detect['extra_args'][name]) or '(its defaults)'} | {s['wall_s']:.1f} | "
                  f"{s['videos_per_hour']:.0f} | {gain} | {s['peak_process_rss_mib']:.0f} | {s['peak_pss_sum_mib']:.0f} "
                  f"| {s['cpu_s_sampled']:.0f} |")
        print("\n" + "; ".join(f"{k}: {yes_no(v) if isinstance(v, bool) or v is None else v}"
                               for k, v in detect["checks"].items()))
    print("\nMemory: 'largest process' is the peak RSS of any one process of the tree, sampled every "
          f"{result['interval_s']} s from /proc; 'wait4' is the kernel's exact peak RSS over the command and the "
          "descendants it reaped (a process left to init is not in it); PSS summed: the tree's memory, shared pages "
          "counted once. CPU s: summed over the tree's processes, sampled (each one's last <interval s is missed).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="git revision of BEFORE (default %(default)s)")
    parser.add_argument("--before-tree", type=Path, help="its worktree (default /tmp/kifaru-before-<sha7>)")
    parser.add_argument("--after", type=Path, default=ROOT, help="source tree of AFTER (default: this working tree)")
    parser.add_argument("--no-snapshot-after", dest="snapshot_after", action="store_false",
                        help="run AFTER from its tree itself, not from a copy of its kifaru/ made at the start")
    parser.add_argument("--repeat", type=int, default=2, help="rounds (each case once a round)")
    parser.add_argument("--quick", action="store_true", help="2 clips, detect on 1 copy: a short trial")
    parser.add_argument("--parts", nargs="+", choices=("predict", "detect"), default=["predict", "detect"])
    parser.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=list(RUNTIMES))
    parser.add_argument("--checkpoint", type=Path, help="default: the seed-1 checkpoint of random_checkpoint.py")
    parser.add_argument("--calibrated", action="store_true", help="its BatchNorm statistics calibrated on photographs")
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, help="folder with make_trailcam_clips.py's clips")
    parser.add_argument("--no-zamba", dest="zamba", action="store_false", help="kifaru only")
    parser.add_argument("--zamba-python", default=os.environ.get("ZAMBA_PYTHON", "/work/zamba-venv/bin/python"),
                        help="python of a venv with zamba 2.7.2 (benchmarks/zamba_setup.sh)")
    parser.add_argument("--detect-copies", type=int, default=2, help="linked copies of the clips for detect")
    parser.add_argument("--detect-num-workers", default="cpu",
                        help="'cpu' (one per core), 'default' (the version's own) or N; only where the CLI has it")
    parser.add_argument("--interval", type=float, default=0.2, help="memory sampling interval, seconds")
    parser.add_argument("--work", type=Path, default=ROOT / "bench-out" / "engine", help="runs, logs, caches")
    parser.add_argument("--json", type=Path, default=ROOT / "bench-out" / "engine.json")
    args = parser.parse_args()
    if args.quick and args.detect_copies == parser.get_default("detect_copies"):
        args.detect_copies = 1
    if args.detect_num_workers not in ("cpu", "default") and not args.detect_num_workers.isdigit():
        parser.error("--detect-num-workers: cpu, default or a number")
    if args.zamba and not Path(args.zamba_python).exists():
        parser.error(f"{args.zamba_python} is missing: make zamba's venv with benchmarks/zamba_setup.sh, or --no-zamba")

    started = time.perf_counter()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    trees = {"before": before_tree(args.before, args.before_tree), "after": args.after.resolve()}
    states = {name: tree_state(tree) for name, tree in trees.items()}
    run_trees = dict(trees)
    if args.snapshot_after:
        run_trees["after"] = snapshot(trees["after"], work / "after_snapshot")
        states["after"]["snapshot"] = str(run_trees["after"])
    versions = [Version(name, tree, model_cache(work / f"model_cache_{name}")) for name, tree in run_trees.items()]
    result = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": machine(),
        "onednn_isa": onednn_isa(),
        "versions": {v.name: {**states[v.name], "imports": check_import(v, work)} for v in versions},
        "repeat": args.repeat,
        "quick": args.quick,
        "interval_s": args.interval,
    }
    if args.zamba:
        result["zamba_versions"] = bench_predict.zamba_versions(args.zamba_python)
        subprocess.run([args.zamba_python, "-c", HUB_CODE, str(HERE)], check=True, cwd=work,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    result["checkpoint_kind"] = "calibrated" if args.calibrated else "seeded"
    checkpoint = args.checkpoint or work / f"time_distributed_seed1_{result['checkpoint_kind']}.ckpt"
    result["checkpoint"] = str(make_checkpoint(checkpoint.resolve(), result["checkpoint_kind"], trees["before"]))
    clips = predict_clips(args)
    if "predict" in args.parts:
        result["predict"] = predict_part(args, versions, Path(result["checkpoint"]), clips, work / "predict")
    if "detect" in args.parts:
        result["detect"] = detect_part(args, versions, clips, work / "detect")
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_s"] = round(time.perf_counter() - started, 1)
    report(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.json} ({result['wall_s']:.0f} s)")
    runs = [r for part in ("predict", "detect") for r in result.get(part, {}).get("runs", [])]
    return 0 if all(r["rc"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
