"""predict_images with bursts: photos grouped by camera folder and EXIF time (or the seq_id column
given), each per-image row carrying its seq_id, one row per sequence with its photos' scores
combined as asked, nothing invented for a sequence the classifier never saw, and the sequences in
MegaDetector output."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kifaru.config.image import ImagePredictConfig
from kifaru.exceptions import ConfigError
from kifaru.images.photo import read_photo
from kifaru.runs.image_predict import predict_images, resolve_image_run
from tests.helpers.megadetector_format import require_megadetector_validator, validate_megadetector_json
from tests.images.boxes import BrightnessDetector
from tests.images.photos import SPECIES, drawn_photo, save_taken, write_image_checkpoint

T0 = datetime(2024, 5, 1, 6, 30, 0)
# Scores read back from the CSVs are float32 as numpy prints them (relative error < 6e-8), and a
# sequence's are written so again: 1e-6 bounds both roundings for values in [0, 1].
CSV_FLOAT32 = 1e-6


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_image_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _scores(row: dict[str, str]) -> np.ndarray:
    return np.array([float(row[name]) for name in SPECIES])


def _mean_with_geometric_blank(rows: list[np.ndarray], weights: list[float] | None = None) -> np.ndarray:
    values = np.array(rows)
    w = np.ones(len(values)) if weights is None else np.array(weights)
    out = (w @ values) / w.sum()
    out[SPECIES.index("blank")] = np.exp(np.log(values[:, SPECIES.index("blank")]).mean())
    return out


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def cameras(tmp_path) -> Path:
    """Two cameras' photos: north has a burst of three, and one ten minutes later; south a burst of
    two at the same time as north's, one photo without a time, and an empty file."""
    card = tmp_path / "card"
    for index, (name, seconds) in enumerate(
        [("north/IMG_0001.JPG", 0), ("north/IMG_0002.JPG", 2), ("north/IMG_0003.JPG", 4), ("north/IMG_0004.JPG", 600),
         ("south/IMG_0001.JPG", 1), ("south/IMG_0002.JPG", 3), ("south/IMG_0003.JPG", None)]
    ):  # fmt: skip
        save_taken(card / name, drawn_photo(index), None if seconds is None else _at(seconds))
    (card / "south" / "IMG_0000.JPG").write_bytes(b"")
    return card


def test_bursts_by_camera_and_time_make_one_row_each(cameras, checkpoint, tmp_path):
    config = ImagePredictConfig(
        data_dir=cameras, checkpoint=checkpoint, crop_images=False, sequences=True, save_dir=tmp_path / "out", num_workers=0
    )
    report = predict_images(config, run=resolve_image_run(config))
    out = tmp_path / "out"
    photos = _rows(out / "zamba_predictions.csv")
    assert list(photos[0])[:2] == ["filepath", "seq_id"]
    seq_of = {str(Path(r["filepath"]).relative_to(cameras)): r["seq_id"] for r in photos}
    assert seq_of == {
        "north/IMG_0001.JPG": "north/0001", "north/IMG_0002.JPG": "north/0001", "north/IMG_0003.JPG": "north/0001",
        "north/IMG_0004.JPG": "north/0002",
        "south/IMG_0001.JPG": "south/0001", "south/IMG_0002.JPG": "south/0001",
        "south/IMG_0003.JPG": "south/0002",  # no time: its own sequence, after the camera's timed ones
    }  # fmt: skip
    assert [Path(p).name for p in report.grouping.untimed] == ["IMG_0003.JPG"] and "south" in report.grouping.untimed[0]
    assert [r["filepath"] for r in _rows(out / "zamba_predictions_failures.csv")] == [str(cameras / "south" / "IMG_0000.JPG")]

    sequences = _rows(out / "zamba_predictions_sequences.csv")
    assert list(sequences[0]) == ["seq_id", *SPECIES]
    assert [r["seq_id"] for r in sequences] == ["north/0001", "north/0002", "south/0001", "south/0002"]
    for row in sequences:
        members = [_scores(p) for p in photos if p["seq_id"] == row["seq_id"]]
        np.testing.assert_allclose(_scores(row), _mean_with_geometric_blank(members), atol=CSV_FLOAT32)
    by_id = {r["seq_id"]: r for r in sequences}
    (lone,) = [p for p in photos if p["seq_id"] == "north/0002"]
    np.testing.assert_allclose(_scores(by_id["north/0002"]), _scores(lone), atol=CSV_FLOAT32)  # one photo: itself

    def stop_after_four(record, done, total):
        if done == 4:
            raise KeyboardInterrupt

    interrupted = config.model_copy(update={"save_dir": tmp_path / "resumed"})
    with pytest.raises(KeyboardInterrupt):
        predict_images(interrupted, run=resolve_image_run(interrupted), progress=stop_after_four)
    again = predict_images(interrupted, run=resolve_image_run(interrupted))  # the first four's times come from the journal
    assert again.resumed == 4 and again.grouping.seq_ids == report.grouping.seq_ids
    resumed = _rows(tmp_path / "resumed" / "zamba_predictions_sequences.csv")
    assert [r["seq_id"] for r in resumed] == [r["seq_id"] for r in sequences]


def test_the_gap_and_the_aggregation_are_the_user_s(cameras, checkpoint, tmp_path):
    config = ImagePredictConfig(
        data_dir=cameras, checkpoint=checkpoint, crop_images=False, sequences=True, sequence_gap_seconds=1.5,
        aggregation="max", save_dir=tmp_path / "out", num_workers=0,
    )  # fmt: skip
    predict_images(config, run=resolve_image_run(config))
    photos = _rows(tmp_path / "out" / "zamba_predictions.csv")
    assert len({p["seq_id"] for p in photos if "north" in p["filepath"]}) == 4  # 2 s apart: no bursts
    for row in _rows(tmp_path / "out" / "zamba_predictions_sequences.csv"):
        members = np.array([_scores(p) for p in photos if p["seq_id"] == row["seq_id"]])
        expected = members.max(axis=0)
        expected[0] = np.exp(np.log(members[:, 0]).mean())  # blank
        np.testing.assert_allclose(_scores(row), expected, atol=CSV_FLOAT32)


@pytest.fixture
def given(tmp_path) -> tuple[Path, Path]:
    """Photos in one folder whose sequences are given by a seq_id column: S1 two bright photos
    (the stand-in detector finds an animal in each, as confident as the photo is bright), S2 two
    dark ones (nothing found), S3 an empty file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, level in [("a.jpg", 110), ("b.jpg", 200), ("c.jpg", 10), ("d.jpg", 20)]:
        pixels = np.full((240, 320, 3), level, np.uint8)
        pixels[40:120, 60:200] = np.asarray(drawn_photo(level))[40:120, 60:200] // (1 if level > 60 else 8)  # something to see
        Image.fromarray(pixels).save(folder / name, quality=95)
    (folder / "e.jpg").write_bytes(b"")
    listing = tmp_path / "filepaths.csv"
    listing.write_text("filepath,seq_id\na.jpg,S1\nb.jpg,S1\nc.jpg,S2\nd.jpg,S2\ne.jpg,S3\n")
    return folder, listing


def test_given_seq_ids_with_crops_weighted_by_detection_confidence(given, checkpoint, tmp_path):
    folder, listing = given
    config = ImagePredictConfig(
        data_dir=folder, filepaths=listing, checkpoint=checkpoint, aggregation="weighted_mean", save_dir=tmp_path / "out", num_workers=0
    )  # sequences not asked for: the seq_id column turns them on
    report = predict_images(config, run=resolve_image_run(config, detector=BrightnessDetector()))
    out = tmp_path / "out"
    photos = _rows(out / "zamba_predictions.csv")
    assert {Path(r["filepath"]).name: r["seq_id"] for r in photos} == {"a.jpg": "S1", "b.jpg": "S1", "c.jpg": "S2", "d.jpg": "S2"}
    assert {Path(n).name for n in report.grouping.seq_ids} == {"a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"}  # the failed one too
    sequences = {r["seq_id"]: r for r in _rows(out / "zamba_predictions_sequences.csv")}
    assert list(sequences) == ["S1", "S2", "S3"]
    crops = {Path(r["filepath"]).name: _scores(r) for r in photos if r["seq_id"] == "S1"}
    assert set(crops) == {"a.jpg", "b.jpg"}  # one animal crop each
    weights = [read_photo(folder / name).pixels.mean() / 255 for name in ("a.jpg", "b.jpg")]  # the detector's confidence
    assert weights[0] < weights[1]
    np.testing.assert_allclose(
        _scores(sequences["S1"]), _mean_with_geometric_blank([crops["a.jpg"], crops["b.jpg"]], weights), atol=CSV_FLOAT32
    )
    for seen_nothing in ("S2", "S3"):  # nothing found, or the photo failed: no scores are made up
        assert [sequences[seen_nothing][name] for name in SPECIES] == [""] * len(SPECIES)


def _megadetector_output(folder: Path, listing: Path, checkpoint: Path, out: Path) -> Path:
    config = ImagePredictConfig(
        data_dir=folder, filepaths=listing, checkpoint=checkpoint, results_file_format="megadetector", save_dir=out, num_workers=0
    )
    predict_images(config, run=resolve_image_run(config, detector=BrightnessDetector()))
    return out / "zamba_predictions.json"


def test_sequences_in_megadetector_output(given, checkpoint, tmp_path):
    folder, listing = given
    results = _megadetector_output(folder, listing, checkpoint, tmp_path / "out")
    data = json.loads(results.read_text())
    assert {entry["file"]: entry["seq_id"] for entry in data["images"]} == {"a.jpg": "S1", "b.jpg": "S1", "c.jpg": "S2", "d.jpg": "S2", "e.jpg": "S3"}
    sequences = data["info"]["custom_metadata"]["sequences"]
    assert sequences["aggregation"] == "mean" and "given" in sequences["grouped"]
    listed = {s["seq_id"]: s for s in sequences["sequences"]}
    assert listed["S1"]["files"] == ["a.jpg", "b.jpg"] and listed["S3"]["files"] == ["e.jpg"]
    assert listed["S2"]["classifications"] is None
    csv_row = {r["seq_id"]: r for r in _rows(tmp_path / "out" / "zamba_predictions_sequences.csv")}["S1"]
    best = max(SPECIES, key=lambda name: float(csv_row[name]))
    assert listed["S1"]["classifications"][0] == [str(SPECIES.index(best)), round(float(csv_row[best]), 4)]


def test_megadetector_output_with_sequences_passes_megadetector_s_validator(given, checkpoint, tmp_path):
    require_megadetector_validator()
    folder, listing = given
    validate_megadetector_json(_megadetector_output(folder, listing, checkpoint, tmp_path / "out"), folder)


def test_a_seq_id_column_is_given_whole_or_not_at_all(given, checkpoint, tmp_path):
    folder, _ = given
    half = tmp_path / "half.csv"
    half.write_text("filepath,seq_id\na.jpg,S1\nb.jpg,\n")
    with pytest.raises(ConfigError, match=r"half.csv: 1 rows have no seq_id \(e.g. b.jpg\)"):
        resolve_image_run(ImagePredictConfig(data_dir=folder, filepaths=half, checkpoint=checkpoint))
    twice = tmp_path / "twice.csv"
    twice.write_text("filepath,seq_id\na.jpg,S1\na.jpg,S2\n")
    with pytest.raises(ConfigError, match=r"twice.csv: a.jpg is listed with two seq_ids \(S1, S2\)"):
        resolve_image_run(ImagePredictConfig(data_dir=folder, filepaths=twice, checkpoint=checkpoint))
