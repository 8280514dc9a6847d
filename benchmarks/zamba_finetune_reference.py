"""Checkpoints that kifaru's training writes, loaded by zamba 2.7.2's own ``zamba predict``.

Runs in kifaru's venv and calls zamba's (see zamba_setup.sh) for its command line, offline:

    ZAMBA_PYTHON=/path/to/zamba-venv/bin/python .venv/bin/python benchmarks/zamba_finetune_reference.py

For each case of tests/train/zamba_finetune_cases.py (labels that are a subset of the model's
species; new species), it fine-tunes the seeded random time_distributed checkpoint on
../shared/data/zamba-test-assets for one epoch with ``kifaru.train_model``, predicts the val and
holdout clips with ``kifaru.predict_model`` and with

    HF_HUB_OFFLINE=1 $ZAMBA_PYTHON -m zamba predict --data-dir <videos> --filepaths <csv>
        --checkpoint <kifaru's checkpoint> --config <loader config> --save-dir <out> -y

and compares the probabilities (the issue asks for agreement within 0.02).

Writes tests/fixtures/zamba_finetune/: zamba's zamba_predictions_<case>.csv (the videos folder
replaced by {VIDEOS}) and manifest.json (versions, settings, for each case the species, checkpoint
sha256 and hparams, the largest difference, times). tests/train/test_zamba_finetune.py trains again
and checks kifaru's predictions against zamba's. Work files go to bench-out/zamba_finetune_reference/.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.train import zamba_finetune_cases as cases  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data"
FIXTURE = ROOT / "tests" / "fixtures" / "zamba_finetune"
WORK = ROOT / "bench-out" / "zamba_finetune_reference"
TOLERANCE = 0.02


def zamba_predict(zamba_python: str, checkpoint: Path, videos: Path, filepaths: Path, work: Path) -> tuple[Path, float]:
    config = work / "zamba_predict.yaml"
    config.write_text(yaml.safe_dump({"video_loader_config": cases.VIDEO_LOADER_CONFIG, "predict_config": {}}), encoding="utf-8")
    save_dir = work / "zamba_predict"
    shutil.rmtree(save_dir, ignore_errors=True)
    command = [zamba_python, "-m", "zamba", "predict", "--data-dir", str(videos), "--filepaths", str(filepaths),
               "--checkpoint", str(checkpoint), "--config", str(config), "--save-dir", str(save_dir),
               "--num-workers", "0", "-y"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    with (work / "zamba_predict.log").open("w") as log:
        rc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    if rc != 0:
        raise SystemExit(f"zamba predict failed (exit {rc}); see {work / 'zamba_predict.log'}")
    return save_dir / "zamba_predictions.csv", time.perf_counter() - started


def read_predictions(path: Path, videos: Path) -> tuple[list[str], dict[str, list[float]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    prefix = str(videos) + "/"
    return header[1:], {row[0].removeprefix(prefix): [float(v) for v in row[1:]] for row in body}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--zamba-python", default=os.environ.get("ZAMBA_PYTHON"))
    args = parser.parse_args()
    if not args.zamba_python:
        parser.error("set ZAMBA_PYTHON or --zamba-python (see benchmarks/zamba_setup.sh)")
    os.environ["KIFARU_CLASSIFIER_RUNTIME"] = "torch"  # as the test, which skips the ONNX export
    import torch

    import kifaru
    from kifaru.models.download import sha256_of as sha256

    videos = cases.assets(args.data) / "videos"
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    FIXTURE.mkdir(parents=True, exist_ok=True)
    start = cases.write_start_checkpoint(WORK / "time_distributed_random.ckpt")
    zamba_version = subprocess.run([args.zamba_python, "-c", "import zamba; print(zamba.__version__)"],
                                   capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    manifest = {
        "written_by": "benchmarks/zamba_finetune_reference.py",
        "zamba_version": zamba_version,
        "kifaru_version": kifaru.__version__,
        "torch_version": torch.__version__,
        "start_checkpoint": {"weight_seed": cases.WEIGHT_SEED, "sha256": sha256(start)},
        "train_settings": cases.TRAIN_SETTINGS,
        "video_loader_config": cases.VIDEO_LOADER_CONFIG,
        "new_species": cases.NEW_SPECIES,
        "predicted_clips": cases.predicted_clips(args.data),
        "cases": {},
    }
    for case in cases.CASES:
        work = WORK / case
        started = time.perf_counter()
        report = cases.train_case(case, start, args.data, work, WORK / "frames")
        train_seconds = time.perf_counter() - started
        ours = cases.predict_with_kifaru(report.checkpoint, args.data, work)
        zamba_csv, zamba_seconds = zamba_predict(args.zamba_python, report.checkpoint, videos, work / "filepaths.csv", work)
        species, zambas = read_predictions(zamba_csv, videos)
        if species != report.species or sorted(zambas) != sorted(ours):
            raise SystemExit(f"{case}: zamba's header or rows differ from kifaru's: {species} vs {report.species}")
        largest = max(abs(a - b) for clip in ours for a, b in zip(ours[clip], zambas[clip]))
        text = zamba_csv.read_text(encoding="utf-8").replace(str(videos), "{VIDEOS}")
        (FIXTURE / f"zamba_predictions_{case}.csv").write_text(text, encoding="utf-8")
        checkpoint = torch.load(report.checkpoint, map_location="cpu", weights_only=False)
        manifest["cases"][case] = {
            "species": report.species,
            "checkpoint_sha256": sha256(report.checkpoint),
            "checkpoint_keys": sorted(checkpoint),
            "hyper_parameters": {k: v for k, v in checkpoint["hyper_parameters"].items() if k != "species"},
            "kifaru_probabilities": ours,
            "largest_difference": largest,
            "train_seconds": round(train_seconds, 1),
            "zamba_predict_seconds": round(zamba_seconds, 1),
        }
        print(f"{case}: {len(species)} species, largest difference kifaru vs zamba {largest:.2e} "
              f"(train {train_seconds:.0f} s, zamba predict {zamba_seconds:.0f} s)", flush=True)  # fmt: skip
        if largest > TOLERANCE:
            raise SystemExit(f"{case}: kifaru and zamba differ by {largest} > {TOLERANCE}")
    (FIXTURE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
