"""``kifaru image predict`` through main(argv): as a new user with only its required argument, with
zamba's YAML and options, and its MegaDetector output through MegaDetector's own validator."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from kifaru.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from tests.helpers.megadetector_format import require_megadetector_validator, validate_megadetector_json
from tests.images.photos import SPECIES, cat_photo, save_photos, write_image_checkpoint
from tests.media import animal_picture


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_image_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt")


def test_image_predict_with_only_its_required_arguments_as_a_new_user(new_user, tmp_path, capsys):
    """`kifaru image predict --data-dir DIR` on a fresh machine: the official lila.science model (a
    tiny random-weight network with its 178 classes and family, served on the bucket mirror) and
    MegadetectorLite (the real one, served as zamba's wheel) are fetched on first use; the cat is
    found and cropped, the drawn scene gets its blank row, the empty file its failure."""
    from kifaru.models.registry import LILA_SCIENCE, MEGADETECTOR_LITE

    new_user.serve_megadetector_lite()
    species = [f"class_{i:03d}" for i in range(LILA_SCIENCE.num_classes)]
    official = write_image_checkpoint(tmp_path / "lila.ckpt", species=species, image_size=LILA_SCIENCE.image_size)
    new_user.serve_official_checkpoint("lila.science", official.read_bytes())
    photos = new_user.work / "photos"
    photos.mkdir()
    Image.fromarray(animal_picture()).save(photos / "cat.jpg", quality=95)
    save_photos(photos, 1)  # photo_000.jpg: no animal
    (photos / "empty.jpg").write_bytes(b"")

    assert main(["image", "predict", "--data-dir", str(photos)]) == EXIT_FAILED  # empty.jpg
    captured = capsys.readouterr()
    assert "3 photos: 2 predicted, 1 failed" in captured.out
    for entry in (MEGADETECTOR_LITE, LILA_SCIENCE):
        assert f"{entry.name}: not in the model cache yet: downloading {entry.weights_filename}" in captured.err
        assert (new_user.model_cache / entry.weights_filename).is_file()
    assert "crops of megadetector_lite's detections (confidence >= 0.2)" in captured.err

    with open(new_user.work / "zamba_predictions.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["filepath", "detection_category", "detection_conf", "x1", "y1", "x2", "y2", *species]
        rows = list(reader)
    by_name: dict[str, list] = {}
    for row in rows:
        by_name.setdefault(Path(row["filepath"]).name, []).append(row)
    assert sorted(by_name) == ["cat.jpg", "photo_000.jpg"]
    assert all(Path(row["filepath"]).is_absolute() for row in rows)  # as zamba writes them
    cat = by_name["cat.jpg"]
    assert cat and all(float(row["detection_conf"]) >= 0.2 and row["detection_category"] == "1" for row in cat)
    for row in cat:  # softmax over the classes: each crop's row sums to 1
        assert np.isclose(sum(float(row[s]) for s in species), 1, atol=1e-4)
        x1, y1, x2, y2 = (int(row[k]) for k in ("x1", "y1", "x2", "y2"))
        assert 0 <= x1 < x2 <= 448 and 0 <= y1 < y2 <= 288
    (blank,) = by_name["photo_000.jpg"]
    assert blank["x1"] == "" and all(blank[s] == "" for s in species)
    failures = _rows(new_user.work / "zamba_predictions_failures.csv")
    assert [(Path(f["filepath"]).name, f["reason"]) for f in failures] == [("empty.jpg", "file is empty (0 bytes)")]
    configuration = yaml.safe_load((new_user.work / "image_predict_configuration.yaml").read_text())
    assert configuration["model_class"] == "ImageClassifierModule" and configuration["species"] == species
    assert configuration["predict_config"]["checkpoint"] == str(new_user.model_cache / LILA_SCIENCE.weights_filename)
    assert configuration["predict_config"]["crop_images"] is True


def test_zambas_yaml_and_options_with_the_command_line_winning(tmp_path, checkpoint, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photos = tmp_path / "photos"
    save_photos(photos, 2)
    config = tmp_path / "image.yaml"
    config.write_text(yaml.safe_dump({"predict_config": {"data_dir": str(photos), "checkpoint": str(checkpoint), "crop_images": False, "save_dir": "from_yaml"}}))
    assert main(["image", "predict", "--config", str(config), "--save-dir", "out", "--results-file-name", "mine.csv", "-y", "-q"]) == EXIT_OK
    rows = _rows(tmp_path / "out" / "mine.csv")
    assert len(rows) == 2 and all(row["x1"] == "0" and row["detection_conf"] == "" for row in rows)  # whole photos, from the YAML
    assert not (tmp_path / "from_yaml").exists()
    capsys.readouterr()

    config.write_text(yaml.safe_dump({"predict_config": {"data_dir": str(photos), "crop_image": False}}))
    assert main(["image", "predict", "--config", str(config)]) == EXIT_USAGE
    assert "unknown field 'crop_image' (did you mean 'crop_images'?)" in capsys.readouterr().err

    assert main(["image", "predict", "--data-dir", str(photos), "--checkpoint", str(checkpoint), "--detections-threshold", "1.5"]) == EXIT_USAGE
    assert "--detections-threshold 1.5" in (err := capsys.readouterr().err) and "between 0 and 1" in err


def test_a_video_checkpoint_is_sent_to_kifaru_predict(tmp_path, capsys):
    from kifaru.models.registry import video_model_entry
    from tests.models.official_files import tiny_checkpoint

    save_photos(tmp_path / "photos", 1)
    tiny_checkpoint(tmp_path / "video.ckpt", video_model_entry("time_distributed"))
    assert main(["image", "predict", "--data-dir", str(tmp_path / "photos"), "--checkpoint", str(tmp_path / "video.ckpt")]) == EXIT_USAGE
    assert "use `kifaru predict` with it" in capsys.readouterr().err


def test_megadetector_output_passes_megadetector_validator(tmp_path, checkpoint, request, capsys):
    """Crops with their species as classifications, a photo with nothing found and a failure, with
    --filepaths and paths relative to --relative-to: MegaDetector's validator and Timelapse's rule
    (every file named relative to the root, and there)."""
    require_megadetector_validator()
    request.getfixturevalue("megadetector_lite")
    root = tmp_path / "root"
    (root / "cam 1").mkdir(parents=True)
    cat_photo().save(root / "cam 1" / "cat.jpg", quality=95)
    save_photos(root / "cam 1", 1)
    (root / "broken.jpg").write_text("not a photo\n" * 10)
    listed = tmp_path / "files.csv"
    listed.write_text("filepath\n" + "".join(f"{p}\n" for p in sorted(map(str, root.rglob("*.jpg")))))
    code = main(
        ["image", "predict", "--filepaths", str(listed), "--checkpoint", str(checkpoint), "--results-file-format", "megadetector",
         "--relative-to", str(root), "--save-dir", str(tmp_path / "out"), "-q"]
    )  # fmt: skip
    assert code == EXIT_FAILED
    output = tmp_path / "out" / "zamba_predictions.json"
    validate_megadetector_json(output, image_root=root)
    entries = {e["file"]: e for e in json.loads(output.read_text())["images"]}
    assert sorted(entries) == ["broken.jpg", "cam 1/cat.jpg", "cam 1/photo_000.jpg"]
    assert isinstance(entries["broken.jpg"]["failure"], str) and entries["broken.jpg"]["detections"] is None
    cropped = [d for d in entries["cam 1/cat.jpg"]["detections"] if d["conf"] >= 0.2]
    assert cropped and all(d["classifications"] for d in cropped)
    data = json.loads(output.read_text())
    assert list(data["classification_categories"].values()) == SPECIES
    assert all(d["conf"] < 0.2 for d in entries["cam 1/photo_000.jpg"]["detections"])


def test_bursts_from_the_command_line_say_which_photos_had_no_time(tmp_path, checkpoint, capsys, monkeypatch):
    from datetime import datetime, timedelta

    from tests.images.photos import drawn_photo, save_taken

    start = datetime(2024, 5, 1, 6, 30)
    for index, seconds in enumerate([0, 1, 2, 400, None]):
        save_taken(tmp_path / "card" / "cam1" / f"IMG_{index:04d}.JPG", drawn_photo(index), None if seconds is None else start + timedelta(seconds=seconds))
    monkeypatch.chdir(tmp_path)
    argv = ["image", "predict", "--data-dir", "card", "--checkpoint", str(checkpoint), "--no-crop-images", "--sequences"]
    assert main([*argv, "--aggregation", "max", "--sequence-gap-seconds", "30"]) == EXIT_OK
    captured = capsys.readouterr()
    assert "5 photos: 5 predicted, 0 failed" in captured.out
    assert "3 sequences (by camera folder and EXIF DateTimeOriginal: a new sequence after a gap of more than 30 s; aggregation max)" in captured.out
    assert "1 photo without an EXIF time (DateTimeOriginal), e.g. " in captured.err and "IMG_0004.JPG" in captured.err
    assert "give --filepaths a CSV with a seq_id column" in captured.err
    assert f"wrote {tmp_path.resolve() / 'zamba_predictions_sequences.csv'}" in captured.out
    assert [r["seq_id"] for r in _rows(tmp_path / "zamba_predictions_sequences.csv")] == ["0001", "0002", "0003"]
    assert main([*argv, "--aggregation", "median"]) == EXIT_USAGE
    assert "invalid choice: 'median'" in capsys.readouterr().err
