"""``kifaru predict --output-format csv,megadetector``: the species per clip in MegaDetector batch
format 1.6 for Timelapse, run as a user runs it (the command line, the real MegadetectorLite in
worker processes, a tiny classifier), checked by MegaDetector's own validator and read back.

Videos, a photo (given by ``--filepaths``; the data folder run says ``--photos skip``, so its
listing takes videos only), a file no decoder can read, and a blank clip. Skipped without the
validator (``MEGADETECTOR_PYTHON``, see ``tests.helpers.megadetector_format``) or without the
detector's weights; the reader test needs only the weights.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kifaru.cli import EXIT_FAILED, main
from kifaru.runs.predict import MEGADETECTOR_JSON, PREDICTIONS_CSV
from tests.detection.md_format import assert_valid_md_batch
from tests.helpers.megadetector_format import require_megadetector_validator, validate_megadetector_json
from tests.media import animal_picture, make_animal_clip, make_clip
from tests.models.tiny_model import SPECIES, write_tiny_checkpoint
from tests.runs.test_backends import DETECTOR_CONFIG


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("media")
    make_animal_clip(folder / "cat.mp4", animal_at=[2, 5])
    make_clip(folder / "sub dir" / "blank.mp4", n_frames=12, fps=4, size=(288, 448))
    (folder / "broken.mp4").write_bytes(b"not a video at all " * 20)
    Image.fromarray(animal_picture()).save(folder / "photo.jpg", quality=95)
    return folder


@pytest.fixture(scope="module")
def predicted(media, tmp_path_factory, request) -> dict[str, Path]:
    """The save folders of a --data-dir run (csv and megadetector) and of a --filepaths run
    (megadetector only) that lists the photo, a clip and the broken file by absolute path."""
    request.getfixturevalue("megadetector_lite")  # skips without the weights (never downloads)
    work = tmp_path_factory.mktemp("predict")
    loader = DETECTOR_CONFIG.model_dump(mode="json", exclude_defaults=True)
    loader["megadetector_lite_config"].pop("device")
    checkpoint = write_tiny_checkpoint(work / "tiny.ckpt", loader_config=loader)
    folder_run = ["predict", "--data-dir", str(media), "--checkpoint", str(checkpoint), "--save-dir", str(work / "folder"), "--photos", "skip"]
    assert main([*folder_run, "--output-format", "csv,megadetector", "-q"]) == EXIT_FAILED  # broken.mp4
    listing = work / "files.csv"
    listing.write_text("filepath\n" + "".join(f"{media / name}\n" for name in ("photo.jpg", "cat.mp4", "broken.mp4")))
    listed_run = ["predict", "--filepaths", str(listing), "--checkpoint", str(checkpoint), "--save-dir", str(work / "listed")]
    assert main([*listed_run, "--output-format", "megadetector", "-q"]) == EXIT_FAILED
    return {"folder": work / "folder", "listed": work / "listed"}


def entries(out: Path) -> dict[str, dict]:
    return {entry["file"]: entry for entry in json.loads((out / MEGADETECTOR_JSON).read_text(encoding="utf-8"))["images"]}


@pytest.mark.parametrize("run", ["folder", "listed"])
def test_predict_output_passes_megadetector_validator(predicted, media, run):
    require_megadetector_validator()
    validate_megadetector_json(predicted[run] / MEGADETECTOR_JSON, image_root=media)


def test_every_file_has_an_entry_relative_to_the_data_folder(predicted):
    folder, listed = entries(predicted["folder"]), entries(predicted["listed"])
    assert sorted(folder) == ["broken.mp4", "cat.mp4", "sub dir/blank.mp4"]
    assert list(listed) == ["photo.jpg", "cat.mp4", "broken.mp4"]  # --filepaths: its order, its common folder
    for run, found in (("folder", folder), ("listed", listed)):
        assert_valid_md_batch(json.loads((predicted[run] / MEGADETECTOR_JSON).read_text(encoding="utf-8")))
        broken = found["broken.mp4"]
        assert broken["detections"] is None and broken["frame_rate"] == -1 and "cannot be opened" in broken["failure"]
    assert "frame_rate" not in listed["photo.jpg"] and listed["photo.jpg"]["detections"]
    # A clip the detector finds empty: an entry without boxes, and its species still in the CSV.
    assert folder["sub dir/blank.mp4"]["detections"] == [] and folder["sub dir/blank.mp4"]["frames_processed"]
    rows = {Path(row["filepath"]).name: row for row in csv.DictReader(open(predicted["folder"] / PREDICTIONS_CSV, encoding="utf-8"))}
    assert set(rows) == {"cat.mp4", "blank.mp4"}


def test_a_reader_gets_back_the_species_of_the_csv_and_the_detector_boxes(predicted, media, megadetector_lite):
    from kifaru.video.loader import FrameLoader

    data = json.loads((predicted["folder"] / MEGADETECTOR_JSON).read_text(encoding="utf-8"))
    categories = data["classification_categories"]
    assert list(categories.values()) == list(SPECIES)
    rows = {Path(row["filepath"]).name: row for row in csv.DictReader(open(predicted["folder"] / PREDICTIONS_CSV, encoding="utf-8"))}
    cat = entries(predicted["folder"])["cat.mp4"]
    ranked = sorted(SPECIES, key=lambda s: -float(rows["cat.mp4"][s]))
    for detection in cat["detections"]:
        species = [categories[c] for c, _ in detection["classifications"]]
        assert species == ranked[: len(species)]
        # The JSON keeps 4 decimals, the CSV 5: the same probabilities to 1e-4 / 2.
        probabilities = [p for _, p in detection["classifications"]]
        np.testing.assert_allclose(probabilities, [float(rows["cat.mp4"][s]) for s in species], atol=5e-5 + 5e-6)
    # The boxes are the detector's on the frames it scored here (bbox x, y, w, h to 4 decimals, conf to 3).
    with FrameLoader(DETECTOR_CONFIG, detector=megadetector_lite) as here:
        scored = here.load(media / "cat.mp4").detections
    expected = [
        (number, [x1, y1, x2 - x1, y2 - y1], score)
        for number, _, found in scored
        for (x1, y1, x2, y2), score in zip(np.clip(found.boxes, 0, 1).tolist(), found.scores.tolist())
    ]
    got = [(d["frame_number"], d["bbox"], d["conf"]) for d in cat["detections"]]
    assert [number for number, _, _ in got] == [number for number, _, _ in expected]
    for (_, box, conf), (_, want_box, want_conf) in zip(got, expected):
        np.testing.assert_allclose(box, want_box, atol=5e-5 + 1e-9)  # each rounded to 4 decimals
        assert abs(conf - want_conf) <= 5e-4 + 1e-9
    assert {2, 5} <= {number for number, _, conf in got if conf >= 0.25}  # the cat's frames
    assert cat["frames_processed"] == [number for number, _, _ in scored]
