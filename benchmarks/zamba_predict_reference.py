"""zamba 2.7.2's own ``zamba predict`` on real clips with random weights: the outputs kifaru's predict must match.

Runs in zamba's venv (see zamba_setup.sh), offline:

    HF_HUB_OFFLINE=1 /path/to/zamba-venv/bin/python benchmarks/zamba_predict_reference.py [--data ../shared/data]

It runs zamba's command line, ``python -m zamba predict`` (the CLI, so the options and defaults are
exactly a user's), with the seed-1 random time_distributed checkpoint that
benchmarks/zamba_model_reference.py writes to bench-out/zamba_models/time_distributed_random.ckpt
(weights: tests/models/random_checkpoint.py, ``random_state_dict(model, 1)``), no --config, so
zamba uses its default time_distributed config (MegadetectorLite frame selection, 16 frames,
num_workers 3, batch_size 2), on the real clips in CLIPS: both clips of ../shared/data/real-videos
and three tiny camera-trap clips of ../shared/data/zamba-test-assets with different containers
(ASF with a space in its folder, AVI with non-ASCII folders, a 6 s MP4). The filepaths CSV lists
them relative to the data root, given as --data-dir, so zamba writes ``<data root>/<relative>``.

Runs, each in a fresh save dir:

- ``default``: no output options; its zamba_predictions.csv and predict_configuration.yaml are kept;
- ``proba_threshold_0.5``: --proba-threshold 0.5; its CSV is kept;
- ``output_class_names``: --output-class-names; its CSV is kept;
- ``broken_files``: the 6 s MP4 plus files that fail (an audio-only .mp4, which ffprobe accepts and
  zamba's loader then fails on, a text file named .mp4, which ffprobe rejects, and a path that does
  not exist); its CSV is kept, to show what zamba does with them.

The last three runs use a frame cache (VIDEO_CACHE_DIR in a temporary folder, so they load each
video once between them); the default run uses none, so its configuration is zamba's default.
The cache holds the exact frames, so the outputs are those of an uncached run.

Writes tests/fixtures/zamba_predict/ (see the README.md written there): the files zamba wrote,
byte for byte except that absolute paths are replaced by placeholders ({DATA_ROOT}, {CHECKPOINT},
{SAVE_DIR}, {MODEL_CACHE_DIR}, {BROKEN_DIR}), plus manifest.json (zamba/torch/ffmpeg versions,
checkpoint seed and sha256, the clips in row order with their container and codec, each run's
command and time, the warnings zamba logged). zamba's logs go to bench-out/zamba_predict_reference/.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_CHECKPOINT = ROOT / "bench-out" / "zamba_models" / "time_distributed_random.ckpt"
CHECKPOINT_SEED = 1  # benchmarks/zamba_model_reference.py MODELS["time_distributed"]
FIXTURE = ROOT / "tests" / "fixtures" / "zamba_predict"
LOGS = ROOT / "bench-out" / "zamba_predict_reference"

# Relative to the data root; this order is the CSVs' row order.
CLIPS = (
    "real-videos/chimp_forest_720x404_4fps_30s.mp4",
    "real-videos/chimps_pool_320x180_30fps_15s.mp4",
    "zamba-test-assets/videos/data/raw/chimpandsee/Trip_5/card 1.2_location/PICT0074.ASF",
    "zamba-test-assets/videos/data/raw/noemie/Videos_All/Taï_T174/Taï_cam192_679012_651185_20161023/11060025.AVI",
    "zamba-test-assets/videos/data/raw/dzanga_sangha/T10/Second_visit_T10/Second_visit_T10C2/01170043.MP4",
)
GOOD_FOR_BROKEN_RUN = CLIPS[-1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
RUNS = {
    "default": [],
    "proba_threshold_0.5": ["--proba-threshold", "0.5"],
    "output_class_names": ["--output-class-names"],
}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def probe(path: Path) -> dict:
    """Container, codec, size, frame rate and duration, from ffprobe (as zamba's loader sees them)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,width,height,r_frame_rate,nb_frames:format=format_name,duration",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )
    info = json.loads(out.stdout)
    stream = info["streams"][0]
    return {
        "container": info["format"]["format_name"],
        "codec": stream["codec_name"],
        "width": stream["width"],
        "height": stream["height"],
        "r_frame_rate": stream["r_frame_rate"],
        "duration_s": float(info["format"]["duration"]),
        "bytes": path.stat().st_size,
    }


def write_filepaths(path: Path, filepaths: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["filepath"])
        for filepath in filepaths:
            writer.writerow([filepath])


def run_zamba(name: str, data_dir: Path, filepaths: Path, checkpoint: Path, save_dir: Path, extra: list[str],
              env: dict) -> dict:
    command = [sys.executable, "-m", "zamba", "predict", "--data-dir", str(data_dir), "--filepaths", str(filepaths),
               "--checkpoint", str(checkpoint), "--save-dir", str(save_dir), "-y", *extra]
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{name}.log"
    print(f"{name}: {' '.join(command)}", file=sys.stderr)
    start = time.perf_counter()
    with log.open("w") as f:
        rc = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    seconds = time.perf_counter() - start
    print(f"{name}: rc {rc}, {seconds:.1f} s (log {log})", file=sys.stderr)
    if rc != 0:
        raise RuntimeError(f"zamba predict ({name}) failed with rc {rc}; see {log}")
    warnings = logged_warnings(log)
    return {"args": extra, "seconds": round(seconds, 1), "log": str(log.relative_to(ROOT)), "warnings": warnings}


def logged_warnings(log: Path) -> list[str]:
    """The messages of loguru's WARNING lines in a zamba log (which zamba colours even in a file)."""
    lines = ANSI.sub("", log.read_text(errors="replace")).splitlines()
    return [line.split(" - ", 1)[-1] for line in lines if "| WARNING" in line]


def placeholders(data_dir: Path, checkpoint: Path, save_dir: Path, model_cache: Path, broken_dir: Path) -> list:
    # most specific first: the temporary folders live inside each other's parents
    return [
        (str(save_dir), "{SAVE_DIR}"),
        (str(broken_dir), "{BROKEN_DIR}"),
        (str(model_cache), "{MODEL_CACHE_DIR}"),
        (str(checkpoint), "{CHECKPOINT}"),
        (str(data_dir), "{DATA_ROOT}"),
    ]


def copy_replacing(source: Path, target: Path, replacements: list) -> None:
    """Copy bytes, replacing absolute paths by placeholders (UTF-8; nothing else changes)."""
    data = source.read_bytes()
    for old, new in replacements:
        data = data.replace(old.encode("utf-8"), new.encode("utf-8"))
    target.write_bytes(data)


def replace_text(text: str, replacements: list) -> str:
    for old, new in replacements:
        text = text.replace(old, new)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data root")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--out", type=Path, default=FIXTURE)
    args = parser.parse_args()
    data_dir = args.data.resolve()
    checkpoint = args.checkpoint.resolve()
    if not checkpoint.exists():
        print(f"{checkpoint} is missing: make it with\n  HF_HUB_OFFLINE=1 {sys.executable} "
              f"benchmarks/zamba_model_reference.py", file=sys.stderr)
        return 2
    missing = [clip for clip in CLIPS if not (data_dir / clip).exists()]
    if missing:
        print(f"missing clips under {data_dir}: {missing}", file=sys.stderr)
        return 2

    import torch
    import zamba

    ffmpeg_version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    tmp = Path(tempfile.mkdtemp(prefix="zamba-predict-ref-"))
    try:
        model_cache = tmp / "model_cache"
        video_cache = tmp / "video_cache"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "MODEL_CACHE_DIR": str(model_cache), "VIDEO_CACHE_DIR": ""}
        cached_env = {**env, "VIDEO_CACHE_DIR": str(video_cache)}
        filepaths = tmp / "filepaths.csv"
        write_filepaths(filepaths, list(CLIPS))

        broken_dir = tmp / "broken_data"
        broken_dir.mkdir()
        shutil.copyfile(data_dir / GOOD_FOR_BROKEN_RUN, broken_dir / Path(GOOD_FOR_BROKEN_RUN).name)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac",
                        str(broken_dir / "audio_only.mp4")], check=True)
        (broken_dir / "not_a_video.mp4").write_text("not a video\n")
        broken_files = [Path(GOOD_FOR_BROKEN_RUN).name, "audio_only.mp4", "not_a_video.mp4", "missing.mp4"]
        broken_filepaths = tmp / "broken_filepaths.csv"
        write_filepaths(broken_filepaths, broken_files)

        args.out.mkdir(parents=True, exist_ok=True)
        runs = {}
        for name, extra in RUNS.items():
            save_dir = tmp / f"out_{name}"
            runs[name] = run_zamba(name, data_dir, filepaths, checkpoint, save_dir, extra,
                                   env if name == "default" else cached_env)
            replacements = placeholders(data_dir, checkpoint, save_dir, model_cache, broken_dir)
            runs[name]["warnings"] = [replace_text(w, replacements) for w in runs[name]["warnings"]]
            csv_name = "zamba_predictions.csv" if name == "default" else f"zamba_predictions_{name}.csv"
            copy_replacing(save_dir / "zamba_predictions.csv", args.out / csv_name, replacements)
            runs[name]["csv"] = csv_name
            if name == "default":
                copy_replacing(save_dir / "predict_configuration.yaml", args.out / "predict_configuration.yaml",
                               replacements)
                runs[name]["configuration"] = "predict_configuration.yaml"

        save_dir = tmp / "out_broken_files"
        runs["broken_files"] = run_zamba("broken_files", broken_dir, broken_filepaths, checkpoint, save_dir, [],
                                         cached_env)
        replacements = placeholders(data_dir, checkpoint, save_dir, model_cache, broken_dir)
        copy_replacing(save_dir / "zamba_predictions.csv", args.out / "zamba_predictions_broken_files.csv",
                       replacements)
        runs["broken_files"]["warnings"] = [replace_text(w, replacements) for w in runs["broken_files"]["warnings"]]
        runs["broken_files"]["csv"] = "zamba_predictions_broken_files.csv"
        runs["broken_files"]["data_dir"] = "{BROKEN_DIR}"
        runs["broken_files"]["filepaths"] = broken_files
        runs["broken_files"]["files"] = {
            Path(GOOD_FOR_BROKEN_RUN).name: f"a copy of {{DATA_ROOT}}/{GOOD_FOR_BROKEN_RUN}",
            "audio_only.mp4": "ffmpeg -f lavfi -i sine=duration=2 -c:a aac (no video stream; ffprobe accepts it)",
            "not_a_video.mp4": "the text 'not a video' (ffprobe rejects it)",
            "missing.mp4": "does not exist",
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    manifest = {
        "generated_by": "HF_HUB_OFFLINE=1 /path/to/zamba-venv/bin/python benchmarks/zamba_predict_reference.py",
        "zamba_version": zamba.__version__,
        "torch_version": torch.__version__,
        "ffmpeg": ffmpeg_version,
        "checkpoint": {
            "file": "bench-out/zamba_models/time_distributed_random.ckpt",
            "made_by": "benchmarks/zamba_model_reference.py (zamba's TimeDistributedEfficientNet, to_disk)",
            "model": "time_distributed",
            "model_class": "TimeDistributedEfficientNet",
            "weight_seed": CHECKPOINT_SEED,
            "weights": "tests/models/random_checkpoint.py random_state_dict(model, 1), time_distributed species",
            "sha256": sha256(checkpoint),
        },
        "data_dir": "{DATA_ROOT}",
        "clips": [{"filepath": clip, **probe(data_dir / clip)} for clip in CLIPS],
        "placeholders": {
            "{DATA_ROOT}": "the data root given as --data-dir (absolute, ../shared/data resolved)",
            "{CHECKPOINT}": "the checkpoint's absolute path",
            "{SAVE_DIR}": "the run's --save-dir (absolute)",
            "{MODEL_CACHE_DIR}": "MODEL_CACHE_DIR (a temporary folder; nothing is downloaded)",
            "{BROKEN_DIR}": "the broken_files run's --data-dir (a temporary folder)",
        },
        "runs": runs,
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (args.out / "README.md").write_text(README, encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


README = """\
# zamba 2.7.2 `zamba predict` outputs (random weights)

Written by `benchmarks/zamba_predict_reference.py` (zamba's venv, offline); do not edit by hand.

`python -m zamba predict --data-dir {DATA_ROOT} --filepaths <csv> --checkpoint {CHECKPOINT}
--save-dir {SAVE_DIR} -y [options]`, where the checkpoint is the seed-1 random time_distributed
checkpoint (bench-out/zamba_models/time_distributed_random.ckpt, from
benchmarks/zamba_model_reference.py; rebuild it with `random_state_dict(model, 1)`) and the
filepaths CSV lists `manifest.json`'s `clips` relative to the data root, in that order. No
--config: zamba's default time_distributed config (MegadetectorLite, 16 frames, num_workers 3,
batch_size 2), on the CPU.

Files (bytes exactly as zamba wrote them, except absolute paths, replaced by placeholders):

- `zamba_predictions.csv`: no output options (probabilities rounded to 5 decimals);
- `predict_configuration.yaml`: that run's configuration (its `inference_start_time` is that run's);
- `zamba_predictions_proba_threshold_0.5.csv`: `--proba-threshold 0.5` (0/1);
- `zamba_predictions_output_class_names.csv`: `--output-class-names`;
- `zamba_predictions_broken_files.csv`: a good clip plus files that fail (see `manifest.json`
  `runs.broken_files`): zamba drops the missing file and the one ffprobe rejects (log warnings
  only) and predicts on all-zero frames for the audio-only .mp4;
- `manifest.json`: versions, checkpoint seed and sha256, the clips with container and codec, each
  run's options, time and logged warnings.

Placeholders: `{DATA_ROOT}` the data root (../shared/data), `{CHECKPOINT}` the checkpoint path,
`{SAVE_DIR}` the run's save dir, `{MODEL_CACHE_DIR}` the model cache dir, `{BROKEN_DIR}` the
broken_files run's data dir. Replace them by your own paths (as text) before comparing.

How zamba writes the CSV (pandas `DataFrame.to_csv(open(path, "w"), index=True)`):

- UTF-8 here (zamba opens the file with the locale's encoding), `\\n` line endings, a final `\\n`,
  no BOM; csv quoting only where needed (a filepath with a comma or a quote).
- Header: `filepath` (the index's name), then the species in checkpoint order. The filepath is
  `str(data_dir) / filepath` as given (not resolved), in the filepaths CSV's order.
- Probabilities: the model's float32 sigmoid, `DataFrame.round(5)` done in float32, each written
  as numpy's shortest float32 repr, i.e. `str(np.round(np.float32(p), 5))`: `0.5883` (no
  trailing zeros), `0.0`, `1.0`, and below 1e-4 scientific with two exponent digits: `1e-05` ...
  `9e-05`, and `1e-04` for 0.0001 (float32 0.0001 is just below 1e-4; Python's float repr would
  give `0.0001`).
- `--proba-threshold t`: `(p > t).astype(int)` on the unrounded probabilities: `0`/`1`.
- `--output-class-names`: a pandas Series (idxmax) written with its unnamed header: `filepath,0`.
- Files that do not exist or that ffprobe rejects get no row (only a log warning); a file that
  ffprobe accepts but the loader fails on gets a row predicted on all-zero frames.
"""


if __name__ == "__main__":
    sys.exit(main())
