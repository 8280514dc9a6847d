"""A two-process CPU DDP run of ``kifaru train`` (issue 5), end to end in a subprocess.

Lightning's DDP launcher starts the second process by running the same command again with
LOCAL_RANK set, so only a real command line (not ``main()`` in this process) tests it.
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from kifaru.train.metrics import classification_metrics
from kifaru.train.synthetic import write_training_set

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

FRAMES = 4
# Per class: 3 train, 1 val, 1 holdout clips. With 3 species that makes 3 val and 3 holdout
# clips: an odd count over 2 processes, so a DistributedSampler's padding (a val clip scored
# twice) would change the metrics.
SPLITS = ("train", "train", "train", "val", "holdout")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("ddp")
    clips = tmp_path / "clips"
    written = write_training_set(clips, clips_per_class=len(SPLITS), n_frames=FRAMES)
    with open(written, newline="") as handle:
        rows = list(csv.DictReader(handle))
    labels = tmp_path / "labels.csv"
    labels.write_text("filepath,label,split\n" + "".join(f"{r['filepath']},{r['label']},{SPLITS[i % len(SPLITS)]}\n" for i, r in enumerate(rows)))
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
train_config:
  labels: {labels}
  data_dir: {clips}
  from_scratch: true
  backbone: test_efficientnet
  backbone_pretrained: false
  max_epochs: 2
  batch_size: 2
  num_workers: 0
  seed: 3
  backbone_finetune_config:
    unfreeze_backbone_at_epoch: 1
  loggers: [csv]
video_loader_config:
  fps: 4
  total_frames: {FRAMES}
  ensure_total_frames: true
  model_input_height: 48
  model_input_width: 64
  cache_dir: {tmp_path / "frames"}
"""
    )
    command = [sys.executable, "-m", "kifaru", "train", "--config", str(config), "--cpu-processes", "2", "--save-dir", str(tmp_path / "out")]
    environment = dict(os.environ)
    environment.pop("LOCAL_RANK", None)  # this is the launching process, rank 0
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=environment, cwd=tmp_path)
    return result, tmp_path, clips, rows


def test_a_two_process_cpu_ddp_run_completes_in_one_version_folder(ddp_run):
    result, tmp_path, _, _ = ddp_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["version_0"]  # the second process made no version_1
    version = out / "version_0"
    for name in ("time_distributed.ckpt", "val_metrics.json", "test_metrics.json", "train_configuration.yaml", "splits.csv", "metrics.csv"):
        assert (version / name).is_file(), name
    assert not list(version.rglob(".*.tmp"))  # no half-written file left by two writers
    assert len(list((version / "checkpoints").glob("best-*.ckpt"))) == 1
    # The summary is printed once, by rank 0, and says how many processes trained.
    assert result.stdout.count("trained 2 epoch(s) on 15 clips") == 1, result.stdout
    assert "2 CPU processes" in result.stdout
    assert "dry run" not in result.stdout
    # The backbone was unfrozen after DDP wrapped the network: its gradients were still shared.
    assert "different weights" not in result.stderr, result.stderr[-3000:]


def test_the_ddp_metrics_cover_every_val_and_holdout_clip_once(ddp_run):
    """Recomputed from kifaru predict's probabilities with the written checkpoint: equal only
    if the metrics were gathered from both processes and the sampler's padding left out."""
    import torch

    from kifaru.config import PredictConfig
    from kifaru.runs.predict import predict_model

    result, tmp_path, clips, rows = ddp_run
    assert result.returncode == 0, result.stderr[-5000:]
    version = tmp_path / "out" / "version_0"
    split_rows = list(csv.DictReader((version / "splits.csv").read_text().splitlines()))
    for subset, split in (("val", "val"), ("test", "holdout")):
        files = sorted(r["filepath"] for r in split_rows if r["split"] == split)
        assert len(files) == 3
        listing = tmp_path / f"{split}.csv"
        listing.write_text("filepath\n" + "\n".join(files) + "\n")
        predicted = predict_model(PredictConfig(filepaths=listing, checkpoint=version / "time_distributed.ckpt", save=False, num_workers=0))
        species = predicted.run.species
        assert species == ["blue_disc", "green_bar", "red_square"] and len(predicted.predicted) == 3
        label_of = {str(clips / r["filepath"]): r["label"] for r in rows}
        targets = np.array([[label_of[r.filepath] == s for s in species] for r in predicted.predicted], dtype=float)
        probabilities = np.array([r.probabilities for r in predicted.predicted])
        expected = classification_metrics(targets, probabilities, species, subset)
        loss = torch.nn.functional.binary_cross_entropy(torch.tensor(probabilities), torch.tensor(targets)).item()
        expected[f"{subset}_loss"] = loss
        reported = json.loads((version / f"{subset}_metrics.json").read_text())
        for name, value in expected.items():
            assert reported[name] == pytest.approx(value, abs=1e-4), (subset, name)
