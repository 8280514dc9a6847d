"""Fine-tuning a zamba checkpoint with kifaru, shared by benchmarks/zamba_finetune_reference.py
(which gives the checkpoints kifaru writes to zamba 2.7.2's ``zamba predict``) and
tests/train/test_zamba_finetune.py (which trains again and compares kifaru's predictions with
zamba's).

The starting point is the seeded random time_distributed checkpoint that both sides can build
(tests/models/random_checkpoint.py); the clips and labels are ../shared/data/zamba-test-assets
(11 train, 4 val, 4 holdout clips, given by its split column). Two cases:

- ``subset``: its labels (antelope_duiker, elephant, gorilla) are model species, so the head and
  all 32 outputs are kept;
- ``new_species``: the same clips relabelled with species the model does not have, so the head is
  replaced by a 3-output one.

One epoch each, zamba's TrainConfig defaults otherwise (the backbone stays frozen until epoch 5),
with a seed. Frames: zamba's time_distributed loader config without MegadetectorLite (which costs
zamba 2.5 minutes per clip on 2 cores) and at half its size (the network takes any size), so that
the test trains in a few minutes on 2 cores.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

ASSETS = "zamba-test-assets"  # under the shared data root
WEIGHT_SEED = 1  # the random checkpoint's, as tests/fixtures/zamba_predict
TRAIN_SEED = 0
PREDICTED_SPLITS = ("val", "holdout")  # clips not trained on
NEW_SPECIES = {"antelope_duiker": "okapi", "elephant": "bongo", "gorilla": "pangolin"}
CASES: dict[str, dict[str, str] | None] = {"subset": None, "new_species": NEW_SPECIES}

TRAIN_SETTINGS: dict[str, Any] = {"max_epochs": 1, "batch_size": 2, "num_workers": 0, "seed": TRAIN_SEED}
VIDEO_LOADER_CONFIG: dict[str, Any] = {
    "crop_bottom_pixels": 50,
    "fps": 4.0,
    "total_frames": 16,
    "ensure_total_frames": True,
    "model_input_height": 120,  # half of zamba's 240x426: a quarter of the EfficientNet's work
    "model_input_width": 213,
    "megadetector_lite_config": None,
}


def assets(data_root: Path) -> Path:
    return data_root / ASSETS


def labelled_rows(data_root: Path) -> list[dict[str, str]]:
    with (assets(data_root) / "labels.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_labels(case: str, data_root: Path, dest: Path) -> Path:
    """The case's labels CSV (filepaths relative to the assets' videos folder)."""
    renamed = CASES[case] or {}
    with dest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["filepath", "label", "split"])
        writer.writeheader()
        for row in labelled_rows(data_root):
            writer.writerow({**row, "label": renamed.get(row["label"], row["label"])})
    return dest


def predicted_clips(data_root: Path) -> list[str]:
    """The clips both sides predict, relative to the videos folder, in labels order."""
    return [row["filepath"] for row in labelled_rows(data_root) if row["split"] in PREDICTED_SPLITS]


def model_species() -> list[str]:
    from kifaru.models.official import video_model_entry

    return list(video_model_entry("time_distributed").species)


def write_start_checkpoint(path: Path) -> Path:
    from tests.models.random_checkpoint import write_random_time_distributed

    return write_random_time_distributed(path, model_species(), WEIGHT_SEED)


def train_case(case: str, start: Path, data_root: Path, work: Path, frame_cache: Path) -> Any:
    """kifaru's ``train_model`` for one case; its TrainReport (``.checkpoint`` is the model)."""
    from kifaru import train_model
    from kifaru.config import VideoLoaderConfig
    from kifaru.config.run import TrainConfig

    work.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(
        labels=write_labels(case, data_root, work / f"labels_{case}.csv"),
        data_dir=assets(data_root) / "videos",
        checkpoint=start,
        save_dir=work / case,
        **TRAIN_SETTINGS,
    )
    return train_model(config, VideoLoaderConfig(**VIDEO_LOADER_CONFIG, cache_dir=frame_cache))


def predict_with_kifaru(checkpoint: Path, data_root: Path, work: Path) -> dict[str, list[float]]:
    """kifaru's probabilities for the predicted clips (keys relative to the videos folder)."""
    from kifaru import predict_model
    from kifaru.config import PredictConfig, VideoLoaderConfig
    from tests.media import write_filepaths

    videos = assets(data_root) / "videos"
    clips = predicted_clips(data_root)
    filepaths = write_filepaths(work / "filepaths.csv", clips)
    config = PredictConfig(data_dir=videos, filepaths=filepaths, checkpoint=checkpoint, save_dir=work / "predict", num_workers=0)
    report = predict_model(config, VideoLoaderConfig(**VIDEO_LOADER_CONFIG))
    failed = [(r.filepath, r.reason) for r in report.failed]
    if failed:
        raise RuntimeError(f"kifaru predict failed on {failed}")
    return {str(Path(r.filepath).relative_to(videos)): list(r.probabilities) for r in report.records}
