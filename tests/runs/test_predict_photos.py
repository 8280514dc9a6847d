"""``kifaru predict`` on a folder of clips and photos: refused with the commands that run both, or
each classified by its kind of model in one run (photos: image), or the photos left out (skip)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from kifaru.config import PredictConfig
from kifaru.exceptions import ConfigError
from kifaru.runs.predict import FAILURES_CSV, PREDICTIONS_CSV, predict_model, resolve_predict_run
from tests.images.photos import save_photos, write_image_checkpoint
from tests.media import make_clip
from tests.models.tiny_model import write_tiny_checkpoint


@pytest.fixture
def mixed(tmp_path) -> Path:
    folder = tmp_path / "card"
    make_clip(folder / "DCIM" / "clip_1.mp4")
    make_clip(folder / "DCIM" / "clip_2.avi")
    save_photos(folder / "DCIM", 2)  # photo_000.jpg, photo_001.jpg
    (folder / "DCIM" / "broken.jpg").write_bytes(b"")
    return folder


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_folder_of_clips_and_photos_is_refused_saying_how_to_run_both(mixed, tmp_path):
    config = PredictConfig(data_dir=mixed, checkpoint=write_tiny_checkpoint(tmp_path / "video.ckpt"), save_dir=tmp_path / "out")
    with pytest.raises(ConfigError) as refused:
        resolve_predict_run(config)
    message = str(refused.value)
    assert f"data_dir {mixed} holds 2 videos and 3 photos" in message
    assert "--photos image (photos: image)" in message and "--photos skip (photos: skip)" in message
    assert f"`kifaru image predict --data-dir {mixed}`" in message
    assert not (tmp_path / "out").exists()


def test_photos_skip_predicts_the_clips_only(mixed, tmp_path):
    config = PredictConfig(data_dir=mixed, checkpoint=write_tiny_checkpoint(tmp_path / "video.ckpt"), save_dir=tmp_path / "out", photos="skip", num_workers=0)
    report = predict_model(config)
    assert [Path(r.item).name for r in report.records] == ["clip_1.mp4", "clip_2.avi"] and report.photos is None
    assert report.run.ignored == "3 .jpg"


def test_photos_image_classifies_each_with_its_kind_of_model(mixed, tmp_path, monkeypatch):
    """The photos go to the image model (here a tiny checkpoint served as the official
    lila.science), with kifaru image predict's outputs beside the clips'."""
    from kifaru.models.registry import LILA_SCIENCE

    species = [f"class_{i:03d}" for i in range(LILA_SCIENCE.num_classes)]  # checked against the official model's
    image_checkpoint = write_image_checkpoint(tmp_path / "lila.ckpt", species=species, image_size=LILA_SCIENCE.image_size)
    monkeypatch.setenv(LILA_SCIENCE.weights_env_var, str(image_checkpoint))
    out = tmp_path / "out"
    config = PredictConfig(data_dir=mixed, checkpoint=write_tiny_checkpoint(tmp_path / "video.ckpt"), save_dir=out, photos="image", num_workers=0)
    run = resolve_predict_run(config)
    assert run.photos_run is not None and len(run.photos_run.files) == 3  # resolved before anything is read
    report = predict_model(config, run=run)
    assert [Path(r["filepath"]).name for r in _rows(out / PREDICTIONS_CSV)] == ["clip_1.mp4", "clip_2.avi"]
    photos = _rows(out / "zamba_image_predictions.csv")
    assert sorted(Path(r["filepath"]).name for r in photos) == ["photo_000.jpg", "photo_001.jpg"]
    assert set(species) <= set(photos[0])
    assert [Path(r["filepath"]).name for r in _rows(out / "zamba_image_predictions_failures.csv")] == ["broken.jpg"]
    assert _rows(out / FAILURES_CSV) == []  # the clips' own failures file: none failed
    assert len(report.photos.failed) == 1 and (out / "image_predict_configuration.yaml").is_file()
