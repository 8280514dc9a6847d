"""``predict_model`` with ``preset: fast``, the real MegadetectorLite and a tiny classifier: a
clip with an animal in view for over a second gets exact mode's row, the same bytes; an empty
one is decided by the detector, says so, and has no probabilities nobody computed."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from kifaru.config import PredictConfig
from kifaru.runs.predict import MEGADETECTOR_JSON, PREDICTIONS_CSV, predict_model, resolve_predict_run
from kifaru.video.screen import Screen
from tests.media import index_frame, make_animal_clip, make_clip
from tests.models.tiny_model import SPECIES, write_tiny_checkpoint
from tests.runs.test_backends import DETECTOR_CONFIG


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fast") / "data"
    make_animal_clip(folder / "deer.mp4", animal_at=range(4, 10), n_frames=16)  # from 1 s to 2.5 s of 4 s
    make_clip(folder / "wind.mp4", fps=4, size=(288, 448), frames=[index_frame(i, 288, 448) for i in range(16)])
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.ckpt")


def rows(folder):
    with open(folder / PREDICTIONS_CSV, newline="") as f:
        return {r["filepath"].rsplit("/", 1)[-1]: r for r in csv.DictReader(f)}


def test_fast_mode_classifies_the_animal_clip_as_exact_mode_and_lets_the_detector_decide_the_empty_one(megadetector_lite, data, checkpoint, tmp_path):
    runs = {}
    for preset in ("exact", "fast"):
        config = PredictConfig(data_dir=data, checkpoint=checkpoint, save_dir=tmp_path / preset, num_workers=0, preset=preset)
        runs[preset] = predict_model(config, DETECTOR_CONFIG, output_formats=["csv", "megadetector"])
    exact, fast = rows(tmp_path / "exact"), rows(tmp_path / "fast")
    assert list(fast["deer.mp4"]) == ["filepath", *SPECIES, "decided_by"] and list(exact["deer.mp4"]) == ["filepath", *SPECIES]
    assert fast["deer.mp4"] == {**exact["deer.mp4"], "decided_by": "classifier"}
    assert fast["wind.mp4"] == {"filepath": exact["wind.mp4"]["filepath"], **{s: "" for s in SPECIES}, "decided_by": "detector"}
    assert all(exact["wind.mp4"][s] for s in SPECIES)  # exact mode classified it
    fast_records = {r.item.rsplit("/", 1)[-1]: r for r in runs["fast"].records}
    assert not fast_records["wind.mp4"].failed and fast_records["wind.mp4"].frames_used == []
    # Timelapse's file says it too.
    entries = {e["file"]: e for e in json.loads((tmp_path / "fast" / MEGADETECTOR_JSON).read_text())["images"]}
    assert entries["wind.mp4"]["decided_by"] == "detector" and entries["deer.mp4"]["decided_by"] == "classifier"
    assert "decided_by" not in json.loads((tmp_path / "exact" / MEGADETECTOR_JSON).read_text())["images"][0]


def test_a_fast_run_is_not_continued_as_an_exact_one(data, checkpoint, tmp_path):
    """Its records are not exact mode's: the journal's header holds the screen's settings."""
    fast = resolve_predict_run(PredictConfig(data_dir=data, checkpoint=checkpoint, save_dir=tmp_path, preset="fast"), DETECTOR_CONFIG)
    exact = resolve_predict_run(PredictConfig(data_dir=data, checkpoint=checkpoint, save_dir=tmp_path), DETECTOR_CONFIG)
    assert fast.journal().header["screen"] == Screen().describe() and "screen" not in exact.journal().header


def test_shards_of_a_fast_run_merge_into_the_run_made_in_one_go(megadetector_lite, data, checkpoint, tmp_path, capsys):
    """The merged CSV keeps fast mode's decided_by column (the results files carry the preset)."""
    from kifaru.cli import EXIT_OK, main
    from kifaru.outputs.results_file import RESULTS_FILE
    from tests.helpers.outputs import assert_same_outputs

    config = tmp_path / "fast.yaml"
    config.write_text(yaml.safe_dump({"predict_config": {"preset": "fast"}, "video_loader_config": DETECTOR_CONFIG.model_dump(mode="json")}))
    common = ["predict", "--config", str(config), "--data-dir", str(data), "--checkpoint", str(checkpoint), "--num-workers", "0", "-q"]
    assert main([*common, "--save-dir", str(tmp_path / "one")]) == EXIT_OK
    for index in (1, 2):
        assert main([*common, "--save-dir", str(tmp_path / f"shard{index}"), "--shard", f"{index}/2"]) == EXIT_OK
    assert main(["merge", str(tmp_path / "shard1"), str(tmp_path / "shard2"), "--out", str(tmp_path / "merged")]) == EXIT_OK
    assert_same_outputs(tmp_path / "one", tmp_path / "merged", [PREDICTIONS_CSV, RESULTS_FILE])
    assert rows(tmp_path / "merged")["wind.mp4"]["decided_by"] == "detector"
