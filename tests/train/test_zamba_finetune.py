"""Checkpoints from kifaru's training load in zamba 2.7.2 and predict as in kifaru.

benchmarks/zamba_finetune_reference.py fine-tuned the seeded random time_distributed checkpoint on
zamba-test-assets for one epoch with kifaru (labels that are a subset of the model's species, and
new species), and gave each written checkpoint to zamba's own ``zamba predict``; its outputs are in
tests/fixtures/zamba_finetune. Here kifaru trains the same way again (same seed, same settings,
tests/train/zamba_finetune_cases.py) and predicts the same clips: every probability must be within
0.02 of zamba's. About 3 minutes on 2 cores; skipped without ../shared/data.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from tests.train import zamba_finetune_cases as cases

pytestmark = pytest.mark.shared_data

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "zamba_finetune"
MANIFEST = json.loads((FIXTURE / "manifest.json").read_text(encoding="utf-8"))
TOLERANCE = 0.02  # the requirement, on every probability


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """Each case trained and predicted by kifaru: {case: (TrainReport, probabilities)}."""
    videos = cases.assets(SHARED_DATA) / "videos"
    if not videos.is_dir():
        pytest.skip(f"real media not available at {videos}")
    work = tmp_path_factory.mktemp("zamba_finetune")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KIFARU_CLASSIFIER_RUNTIME", "torch")  # no ONNX export of each new checkpoint
        start = cases.write_start_checkpoint(work / "start.ckpt")
        out = {}
        for case in cases.CASES:
            report = cases.train_case(case, start, SHARED_DATA, work / case, work / "frames")
            out[case] = (report, cases.predict_with_kifaru(report.checkpoint, SHARED_DATA, work / case))
    return out


def _zamba_predictions(case: str) -> tuple[list[str], dict[str, np.ndarray]]:
    with (FIXTURE / f"zamba_predictions_{case}.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0][1:], {row[0].removeprefix("{VIDEOS}/"): np.array(row[1:], dtype=float) for row in rows[1:]}


def test_the_fixture_was_made_with_these_settings():
    assert MANIFEST["train_settings"] == cases.TRAIN_SETTINGS
    assert MANIFEST["video_loader_config"] == cases.VIDEO_LOADER_CONFIG
    assert MANIFEST["new_species"] == cases.NEW_SPECIES
    assert MANIFEST["start_checkpoint"]["weight_seed"] == cases.WEIGHT_SEED
    assert set(MANIFEST["cases"]) == set(cases.CASES)


@pytest.mark.parametrize("case", list(cases.CASES))
def test_zamba_predict_gives_kifarus_probabilities_for_the_checkpoint_kifaru_trained(trained, case):
    report, ours = trained[case]
    species, zambas = _zamba_predictions(case)
    assert species == report.species  # zamba read the species (and their order) from kifaru's file
    assert sorted(zambas) == sorted(ours) == sorted(MANIFEST["predicted_clips"])
    for clip, probabilities in ours.items():
        np.testing.assert_allclose(probabilities, zambas[clip], atol=TOLERANCE, rtol=0, err_msg=f"{case}: {clip}")


def test_a_species_subset_keeps_the_models_head_and_new_species_replace_it(trained):
    subset, _ = trained["subset"]
    new, _ = trained["new_species"]
    assert subset.species == cases.model_species()  # all 32 outputs, in the model's order
    assert new.species == sorted(cases.NEW_SPECIES.values())
    assert subset.epochs == new.epochs == 1


def test_the_checkpoint_holds_what_zamba_reads(trained):
    import torch

    for case, (report, _) in trained.items():
        checkpoint = torch.load(report.checkpoint, map_location="cpu", weights_only=False)
        assert sorted(checkpoint) == MANIFEST["cases"][case]["checkpoint_keys"]
        hparams = checkpoint["hyper_parameters"]
        assert hparams["species"] == report.species and hparams["model_class"] == "TimeDistributedEfficientNet"
        assert {k: v for k, v in hparams.items() if k != "species"} == MANIFEST["cases"][case]["hyper_parameters"]
