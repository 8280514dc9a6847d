"""Training on the CPU: a small timm backbone learns made-up clips whose classes look different.

    .venv/bin/python benchmarks/bench_train.py [--seeds 0 1] [--classes 4] [--clips-per-class 40]
        [--backbone resnet10t] [--lr 1e-3] [--scheduler cosine] [--max-epochs 30] [--patience 6]
        [--height 96] [--width 128] [--frames 4] [--batch-size 8] [--num-workers 0]
        [--min-f1 0.9] [--out bench-out/train.json] [--work bench-out/train_runs]

For each seed in --seeds (each run is independent: its own clip set, its own cold frame cache):

1. builds a labelled clip set with ``kifaru.train.synthetic.write_training_set``: --classes classes
   (a red square, a blue disc, a green bar, a yellow cross, ...: each a shape of its own colour
   moving over a noisy background of a random dull colour), --clips-per-class H.264 clips each, of
   --frames frames at 4 fps (96x128), with the run's seed;
2. the frame-cache pre-pass: ``kifaru.train.data.cache_clips`` on every clip, timed, with the
   video_loader_config the training then uses (fps 4, --frames frames, --height x --width) into an
   empty cache folder: the pass ``train_model`` makes first, so that it then finds every clip in
   the cache and only checks it;
3. ``kifaru.train_model`` with ``from_scratch: true`` and the timm --backbone, randomly initialised
   (``backbone_pretrained: false``: nothing is downloaded), which kifaru trains whole from the first
   epoch, BatchNorm statistics included; Adam at --lr, falling to 0 at --max-epochs
   (CosineAnnealingLR; --scheduler none keeps it constant), horizontal flips, zamba's default
   split proportions (train 3 : val 1 : holdout 1, per species), early stopping on val_macro_f1
   (--patience), at most --max-epochs epochs, on the CPU (``gpus: 0``).

Reports for each run: the set and its splits, the pre-pass time, the wall time of ``train_model``
(model building, training, the final holdout and validation passes, writing the checkpoint), the
epochs run, the first epoch whose val macro-F1 reached --min-f1, the best val macro-F1 (the
validation set scored again with the best checkpoint) and the holdout ("test") macro-F1 of that
checkpoint, and the peak memory of this process and its children: PSS summed over the process
tree, sampled every 0.2 s (``TreeSampler`` of benchmarks/bench_predict.py), and the kernel's peak
RSS of this process (``ru_maxrss``). Prints markdown tables and writes everything (the machine,
the configs, every epoch's metrics) to --out as JSON. Exits 1 if any run's best val macro-F1 is
below --min-f1.

Not a test: a run takes minutes, and its time depends on the machine's load. The F1 figures and the
epochs depend only on the seeds (torch's CPU kernels are deterministic enough here for that).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shlex
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from bench_predict import MIB, TreeSampler  # this folder's (the script's folder is on sys.path)
from machine import machine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLIP_FPS = 4  # the clips' frame rate, and the loader's: every frame of a clip is one model frame

if TYPE_CHECKING:
    from kifaru.config import TrainConfig, VideoLoaderConfig


def loader_config(args: argparse.Namespace, cache_dir: Path) -> VideoLoaderConfig:
    from kifaru.config import VideoLoaderConfig

    return VideoLoaderConfig(
        fps=CLIP_FPS, total_frames=args.frames, ensure_total_frames=True,
        model_input_height=args.height, model_input_width=args.width, cache_dir=cache_dir,
    )  # fmt: skip


def train_config(args: argparse.Namespace, labels: Path, save_dir: Path, seed: int) -> TrainConfig:
    from kifaru.config import TrainConfig

    scheduler = None
    if args.scheduler == "cosine":
        # The rate falls to 0 at --max-epochs: the late epochs settle instead of jumping around.
        scheduler = {"scheduler": "CosineAnnealingLR", "scheduler_params": {"T_max": args.max_epochs}}
    return TrainConfig(
        # A random backbone trains whole from the first epoch (kifaru's rule: backbone_finetune_config
        # and train_full_backbone apply to learnt weights only), BatchNorm statistics included.
        labels=labels, data_dir=labels.parent, from_scratch=True, backbone=args.backbone, backbone_pretrained=False,
        lr=args.lr, scheduler_config=scheduler, augmentations=[{"name": "horizontal_flip", "p": 0.5}],
        early_stopping_config={"monitor": "val_macro_f1", "patience": args.patience, "verbose": False},
        max_epochs=args.max_epochs, batch_size=args.batch_size, num_workers=args.num_workers, gpus=0,
        save_dir=save_dir, overwrite=True, seed=seed, loggers=["csv"],
    )  # fmt: skip


def epoch_metrics(metrics_csv: Path) -> list[dict]:
    """One row per epoch from Lightning's metrics.csv: epoch (1-based), train loss, val loss, val macro-F1."""
    by_epoch: dict[int, dict] = {}
    with metrics_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if not row.get("epoch"):
                continue
            epoch = by_epoch.setdefault(int(row["epoch"]) + 1, {"epoch": int(row["epoch"]) + 1})
            for name in ("train_loss_epoch", "val_loss", "val_macro_f1"):
                if row.get(name):
                    epoch[name] = round(float(row[name]), 4)
    # The final test and validate passes of the best checkpoint log under that epoch too: keep
    # the epochs of training (those with a train loss).
    return [by_epoch[e] for e in sorted(by_epoch) if "train_loss_epoch" in by_epoch[e]]


def one_run(args: argparse.Namespace, seed: int) -> dict:
    from kifaru.train.data import cache_clips
    from kifaru.train.runner import train_model
    from kifaru.train.synthetic import CLASSES, write_training_set

    work = args.work.resolve() / f"seed{seed}"
    if work.exists():
        shutil.rmtree(work)  # a fresh set and a cold frame cache
    started = time.perf_counter()
    labels = write_training_set(work / "clips", args.clips_per_class, CLASSES[: args.classes], seed=seed, n_frames=args.frames, fps=CLIP_FPS)
    make_s = time.perf_counter() - started

    loader = loader_config(args, work / "frames")
    filepaths = sorted(str(work / "clips" / line.split(",")[0]) for line in labels.read_text().splitlines()[1:])
    started = time.perf_counter()
    cached = cache_clips(filepaths, loader, args.num_workers)
    cache_s = time.perf_counter() - started
    if cached.failures:
        raise RuntimeError(f"{len(cached.failures)} synthetic clips cannot be read, e.g. {cached.failures[0]}")
    cache_files = sum(1 for p in (work / "frames").rglob("*") if p.is_file())

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice (few workers, small logging interval)
        report = train_model(train_config(args, labels, work / "out", seed), loader)
    train_s = time.perf_counter() - started
    epochs = epoch_metrics(report.version_dir / "metrics.csv")
    reached = next((e["epoch"] for e in epochs if e.get("val_macro_f1", 0) >= args.min_f1), None)
    best = max(epochs, key=lambda e: e.get("val_macro_f1", -1)) if epochs else {}
    splits = {name: len(report.clips.subset(name)[0]) for name in ("train", "val", "holdout")}
    return {
        "seed": seed,
        "clips": len(filepaths),
        "splits": splits,
        "species": report.species,
        "make_clips_s": round(make_s, 2),
        "cache_prepass_s": round(cache_s, 2),
        "cache_files_after_training": sum(1 for p in (work / "frames").rglob("*") if p.is_file()),
        "cache_files_after_prepass": cache_files,
        "train_model_s": round(train_s, 2),
        "epochs_run": len(epochs),
        "seconds_per_epoch": round(train_s / max(1, len(epochs)), 2),
        "first_epoch_at_min_f1": reached,
        "best_epoch": best.get("epoch"),
        "val_macro_f1": round(report.val_metrics.get("val_macro_f1", float("nan")), 4),
        "test_macro_f1": round(report.test_metrics.get("test_macro_f1", float("nan")), 4),
        "val_metrics": report.val_metrics,
        "test_metrics": report.test_metrics,
        "epochs": epochs,
        "checkpoint": str(report.checkpoint),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="one run per seed (clip set and training)")
    parser.add_argument("--classes", type=int, default=4, help="how many of the synthetic classes (at most 5)")
    parser.add_argument("--clips-per-class", type=int, default=40)
    parser.add_argument("--frames", type=int, default=4, help="frames per clip, and the model's total_frames")
    parser.add_argument("--height", type=int, default=96, help="model_input_height")
    parser.add_argument("--width", type=int, default=128, help="model_input_width")
    parser.add_argument("--backbone", default="resnet10t", help="a timm model (randomly initialised)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--scheduler", choices=("cosine", "none"), default="cosine", help="cosine: CosineAnnealingLR over --max-epochs")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=6, help="early stopping's, on val_macro_f1")
    parser.add_argument("--num-workers", type=int, default=0, help="for the pre-pass and the data loaders")
    parser.add_argument("--min-f1", type=float, default=0.9, help="the best val macro-F1 every run must reach")
    parser.add_argument("--interval", type=float, default=0.2, help="memory sampling interval, seconds")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "train.json")
    parser.add_argument("--work", type=Path, default=ROOT / "bench-out" / "train_runs", help="each run's clips, frame cache and outputs")
    args = parser.parse_args()
    from kifaru.train.synthetic import CLASSES

    if not 2 <= args.classes <= len(CLASSES):
        parser.error(f"--classes must be 2 to {len(CLASSES)} (the synthetic classes: {', '.join(CLASSES)})")

    result = {"command": shlex.join([sys.executable, *sys.argv]), "machine": machine(), "settings": vars(args) | {"out": str(args.out), "work": str(args.work)}, "runs": []}
    for seed in args.seeds:
        print(f"-- seed {seed}", file=sys.stderr, flush=True)
        sampler = TreeSampler(os.getpid(), args.interval)
        sampler.start()
        try:
            run = one_run(args, seed)
        finally:
            sampler.stop()
        run["peak_pss_mib"] = round(sampler.peak_pss / MIB) if sampler.pss_available else None
        run["peak_rss_sum_mib"] = round(sampler.peak_rss / MIB)
        result["runs"].append(run)
    # ru_maxrss: KiB on Linux; the peak of this process over all runs.
    result["ru_maxrss_self_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))

    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, load average at start {m['load_average_at_start']}, "
          f"torch {m['torch']} ({m['torch_threads']} threads)")
    print(f"backbone {args.backbone} (random init, all of it trained from epoch 1), {args.frames} frames of {args.height}x{args.width}, "
          f"Adam lr {args.lr}, batch {args.batch_size}, horizontal_flip, early stopping on val_macro_f1 (patience {args.patience}), "
          f"max {args.max_epochs} epochs")
    print("\n| seed | clips (train/val/holdout) | pre-pass s | train_model s | s/epoch | epochs run | first epoch >= "
          f"{args.min_f1} | best epoch | val macro-F1 | test macro-F1 | peak PSS MiB |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in result["runs"]:
        s = r["splits"]
        print(f"| {r['seed']} | {r['clips']} ({s['train']}/{s['val']}/{s['holdout']}) | {r['cache_prepass_s']:.1f} | "
              f"{r['train_model_s']:.1f} | {r['seconds_per_epoch']:.1f} | {r['epochs_run']} | {r['first_epoch_at_min_f1'] or '-'} | "
              f"{r['best_epoch']} | {r['val_macro_f1']:.3f} | {r['test_macro_f1']:.3f} | {r['peak_pss_mib']} |")
    print(f"\npeak RSS of this process (ru_maxrss, over all runs): {result['ru_maxrss_self_mib']} MiB")
    print(f"wrote {args.out}")
    failed = [r["seed"] for r in result["runs"] if not r["val_macro_f1"] >= args.min_f1]
    if failed:
        print(f"FAILED: best val macro-F1 below {args.min_f1} for seed(s) {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
