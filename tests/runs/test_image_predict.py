"""predict_images: every photo gets rows (one per crop, or a whole-photo or blank row) or a failure
record with its reason; crops are cut where the boxes say; a photo that kills its worker is that
photo's failure; a rerun resumes; image and video checkpoints go to their own commands."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kifaru.config.image import ImagePredictConfig
from kifaru.exceptions import ConfigError
from kifaru.runs import backends
from kifaru.runs.image_predict import predict_images, resolve_image_run
from kifaru.runs.records import STAGE_WORKER
from tests.images.boxes import ANIMAL_BOX, BrightnessDetector, write_md_boxes
from tests.images.photos import SPECIES, cat_photo, drawn_photo, save_photos, write_image_checkpoint
from tests.images.test_photo import write_png16_rgb
from tests.runs.crashing import run_or_crash


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_image_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _by_file(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    grouped: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        grouped.setdefault(Path(row["filepath"]).name, []).append(row)
    return grouped


def _probabilities(row: dict[str, str]) -> np.ndarray:
    return np.array([float(row[name]) for name in SPECIES])


def _classify(checkpoint: Path, image: Image.Image) -> np.ndarray:
    from kifaru.images.classifier import ImageClassifier

    classifier = ImageClassifier.from_file(checkpoint)
    return classifier.predict_proba(classifier.to_input(image)[None])[0]


def _run(config: ImagePredictConfig, **resolve):
    return predict_images(config, run=resolve_image_run(config, **resolve))


@pytest.fixture
def card(tmp_path) -> Path:
    """An SD card's worth of awkward photos (and a dark one the stand-in detector finds empty)."""
    folder = tmp_path / "card"
    save_photos(folder, 2)  # photo_000.jpg, photo_001.jpg
    Image.new("RGB", (160, 120), (10, 10, 10)).save(folder / "dark.jpg")
    (folder / "zero.jpg").write_bytes(b"")
    cat_photo().save(folder / "whole.jpg", quality=90)
    (folder / "truncated.jpg").write_bytes((folder / "whole.jpg").read_bytes()[:5000])
    (folder / "text.jpg").write_text("not a photo\n" * 30)
    drawn_photo(7).save(folder / "png_named.jpg", format="PNG")
    drawn_photo(8).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray((np.arange(120 * 160).reshape(120, 160) * 3).astype(np.uint16)).save(folder / "gray16.png")
    write_png16_rgb(folder / "rgb16.png", (np.asarray(drawn_photo(9)).astype(np.uint16) * 257))
    exif = Image.Exif()
    exif[0x0112] = 6
    drawn_photo(10, size=(320, 240)).save(folder / "turned.jpg", exif=exif)
    drawn_photo(11).convert("L").save(folder / "gray.jpg")
    Image.fromarray(np.full((6000, 8000, 3), 120, np.uint8)).save(folder / "big.jpg", quality=80)
    (folder / "._whole.jpg").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 100)  # macOS AppleDouble
    return folder


FAILING = {
    "zero.jpg": "0 bytes",
    "truncated.jpg": "is the file complete",
    "text.jpg": "not an image file",
    "._whole.jpg": "macOS metadata file",
}


def test_every_photo_gets_rows_or_a_failure_with_its_reason(card, checkpoint, tmp_path):
    config = ImagePredictConfig(data_dir=card, checkpoint=checkpoint, save_dir=tmp_path / "out")
    report = _run(config, detector=BrightnessDetector())
    out = tmp_path / "out"
    failures = {Path(r["filepath"]).name: r for r in _rows(out / "zamba_predictions_failures.csv")}
    assert failures.keys() == FAILING.keys()
    for name, reason in FAILING.items():
        assert reason in failures[name]["reason"], failures[name]
    rows = _by_file(_rows(out / "zamba_predictions.csv"))
    photos = sorted(p.name for p in card.iterdir())
    assert sorted(rows) == sorted(set(photos) - FAILING.keys())
    assert len(report.records) == len(photos)
    # The dark photo: no detection reaches 0.2, so one blank row, nothing invented.
    (dark,) = rows.pop("dark.jpg")
    assert dark["detection_category"] == "" and dark["x1"] == "" and all(dark[s] == "" for s in SPECIES)
    for name, (row, *more) in rows.items():
        assert not more, name  # one animal each
        assert row["detection_category"] == "1"
        assert np.isclose(_probabilities(row).sum(), 1, atol=1e-5), name
    # Boxes are cut from the upright photo: the EXIF-rotated 320x240 one is 240 wide, 320 high.
    (turned,) = rows["turned.jpg"]
    x, y, w, h = ANIMAL_BOX
    assert [int(turned[k]) for k in ("x1", "y1", "x2", "y2")] == [int(x * 240), int(y * 320), int(x * 240) + int(w * 240), int(y * 320) + int(h * 320)]
    (big,) = rows["big.jpg"]
    assert [int(big[k]) for k in ("x1", "y1", "x2", "y2")] == [2000, 1200, 6000, 4800]
    notes = {Path(r.item).name: r.notes for r in report.records}
    assert notes["png_named.jpg"] == ["a PNG file named .jpg: read as PNG"]
    assert notes["turned.jpg"] == ["turned upright (EXIF orientation 6)"]


def test_crop_probabilities_are_the_classifiers_on_the_crop(tmp_path, checkpoint):
    folder = tmp_path / "photos"
    cat_photo().save(folder.mkdir() or folder / "cat.png")
    config = ImagePredictConfig(data_dir=folder, checkpoint=checkpoint, save_dir=tmp_path / "out")
    _run(config, detector=BrightnessDetector())
    (row,) = _rows(tmp_path / "out" / "zamba_predictions.csv")
    box = tuple(int(row[k]) for k in ("x1", "y1", "x2", "y2"))
    expected = _classify(checkpoint, cat_photo().crop(box))
    # The same crop through the same float32 network, batched alike: only summation order differs.
    assert np.abs(_probabilities(row) - expected).max() < 1e-5


def test_without_crops_each_photo_is_one_whole_photo_row(tmp_path, checkpoint):
    folder = tmp_path / "photos"
    paths = save_photos(folder, 3)
    config = ImagePredictConfig(data_dir=folder, checkpoint=checkpoint, crop_images=False, save_dir=tmp_path / "out", num_workers=0)
    _run(config)
    rows = _rows(tmp_path / "out" / "zamba_predictions.csv")
    assert [Path(r["filepath"]).name for r in rows] == [p.name for p in paths]
    for row, path in zip(rows, paths):
        width, height = Image.open(path).size
        assert [row[k] for k in ("detection_category", "detection_conf")] == ["", ""]
        assert [int(row[k]) for k in ("x1", "y1", "x2", "y2")] == [0, 0, width, height]
        assert np.abs(_probabilities(row) - _classify(checkpoint, Image.open(path).convert("RGB"))).max() < 1e-5
    assert len({tuple(_probabilities(r)) for r in rows}) == 3  # the photos differ, so do their outputs


def test_a_photo_that_kills_its_worker_is_its_failure_and_is_not_retried(tmp_path, checkpoint, monkeypatch):
    folder = tmp_path / "photos"
    names = ["a.jpg", "crash.jpg", "b.jpg", "exit.jpg", "c.jpg"]
    folder.mkdir()
    for index, name in enumerate(names):
        drawn_photo(index).save(folder / name)
    boxes = write_md_boxes(tmp_path / "md.json", {name: [(ANIMAL_BOX, 0.9)] for name in names})
    monkeypatch.setattr(backends, "_run_in_worker", run_or_crash)
    config = ImagePredictConfig(data_dir=folder, checkpoint=checkpoint, save_dir=tmp_path / "out", num_workers=2)
    seen = []

    def stop_at_the_last(record, done, total):  # the run is stopped once every photo is journalled
        seen.append(record)
        if done == total:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_images(config, run=resolve_image_run(config, detections_file=boxes), progress=stop_at_the_last)
    records = {Path(r.item).name: r for r in seen}
    assert records.keys() == set(names)
    assert records["crash.jpg"].failed and records["crash.jpg"].stage == STAGE_WORKER and "worker process died" in records["crash.jpg"].reason
    assert records["exit.jpg"].failed and "exited with status 3" in records["exit.jpg"].reason
    assert not any(records[name].failed for name in ("a.jpg", "b.jpg", "c.jpg"))
    again = _run(config, detections_file=boxes)
    assert again.resumed == len(names)  # the dead-worker photos are finished: not tried again
    assert {Path(r.item).name for r in again.failed} == {"crash.jpg", "exit.jpg"}
    assert sorted(_by_file(_rows(tmp_path / "out" / "zamba_predictions.csv"))) == ["a.jpg", "b.jpg", "c.jpg"]


def test_an_interrupted_run_resumes_refuses_other_settings_and_overwrite_starts_over(tmp_path, checkpoint):
    folder = tmp_path / "photos"
    save_photos(folder, 4)
    whole = ImagePredictConfig(data_dir=folder, checkpoint=checkpoint, save_dir=tmp_path / "whole", num_workers=0)
    _run(whole, detector=BrightnessDetector())
    config = whole.model_copy(update={"save_dir": tmp_path / "out"})

    def stop_after_two(record, done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_images(config, run=resolve_image_run(config, detector=BrightnessDetector()), progress=stop_after_two)
    other = config.model_copy(update={"detections_threshold": 0.5})
    with pytest.raises(ConfigError, match="detections_threshold"):
        resolve_image_run(other, detector=BrightnessDetector())
    again = _run(config, detector=BrightnessDetector())
    assert again.resumed == 2
    resumed, uninterrupted = _rows(tmp_path / "out" / "zamba_predictions.csv"), _rows(tmp_path / "whole" / "zamba_predictions.csv")
    assert [{k: v for k, v in r.items() if k not in SPECIES} for r in resumed] == [{k: v for k, v in r.items() if k not in SPECIES} for r in uninterrupted]
    # Photos are classified in batches of crops, and a resumed run's batches hold other photos:
    # float32 kernels then sum in another order (about 1e-7 on a probability), nothing more.
    assert max(np.abs(_probabilities(a) - _probabilities(b)).max() for a, b in zip(resumed, uninterrupted)) < 1e-5
    with pytest.raises(ConfigError, match="already holds zamba_predictions.csv"):  # a finished run is not redone
        resolve_image_run(config, detector=BrightnessDetector())
    assert _run(other.model_copy(update={"overwrite": True}), detector=BrightnessDetector()).resumed == 0


def test_boxes_given_in_a_megadetector_file_are_cropped(tmp_path, checkpoint):
    folder = tmp_path / "photos"
    (folder / "cam1").mkdir(parents=True)
    cat_photo().save(folder / "cam1" / "cat.jpg", quality=95)
    drawn_photo(1).save(folder / "empty.jpg")
    # Paths relative to the file's own folder, as Timelapse keeps them.
    boxes = write_md_boxes(folder / "md.json", {"cam1/cat.jpg": [([0.1, 0.1, 0.5, 0.5], 0.8), ([0.6, 0.6, 0.3, 0.3], 0.1)], "empty.jpg": []})
    config = ImagePredictConfig(data_dir=folder, checkpoint=checkpoint, save_dir=tmp_path / "out", num_workers=0)
    _run(config, detections_file=boxes)
    rows = _by_file(_rows(tmp_path / "out" / "zamba_predictions.csv"))
    (cat,) = rows["cat.jpg"]  # the 0.1 box is under detections_threshold 0.2
    assert [int(cat[k]) for k in ("x1", "y1", "x2", "y2")] == [45, 30, 45 + 225, 30 + 150]
    assert float(cat["detection_conf"]) == 0.8
    assert rows["empty.jpg"][0]["x1"] == ""


def test_a_detections_file_naming_none_of_the_photos_is_refused(tmp_path, checkpoint):
    folder = tmp_path / "photos"
    save_photos(folder, 1)
    boxes = write_md_boxes(tmp_path / "md.json", {"elsewhere/other.jpg": [(ANIMAL_BOX, 0.9)]})
    with pytest.raises(ConfigError, match="none of its 1 entries names one of the photos"):
        resolve_image_run(ImagePredictConfig(data_dir=folder, checkpoint=checkpoint), detections_file=boxes)


def test_image_and_video_checkpoints_go_to_their_own_commands(tmp_path, checkpoint):
    from kifaru.config import PredictConfig
    from kifaru.models.registry import video_model_entry
    from kifaru.runs.predict import resolve_predict_run
    from tests.models.official_files import tiny_checkpoint

    folder = tmp_path / "media"
    save_photos(folder, 1)
    video_checkpoint = tmp_path / "video.ckpt"
    tiny_checkpoint(video_checkpoint, video_model_entry("time_distributed"))
    with pytest.raises(ConfigError, match="TimeDistributedEfficientNet classifies videos.*kifaru predict"):
        resolve_image_run(ImagePredictConfig(data_dir=folder, checkpoint=video_checkpoint))
    from tests.media import make_clip

    make_clip(tmp_path / "clips" / "a.mp4")
    with pytest.raises(ConfigError, match="ImageClassifierModule classifies images.*kifaru image predict"):
        resolve_predict_run(PredictConfig(data_dir=tmp_path / "clips", checkpoint=checkpoint), None)


def test_a_folder_without_photos_is_refused(tmp_path, checkpoint):
    from tests.media import make_clip

    make_clip(tmp_path / "clips" / "a.mp4")
    with pytest.raises(ConfigError, match="no photos found"):
        resolve_image_run(ImagePredictConfig(data_dir=tmp_path / "clips", checkpoint=checkpoint))


def test_a_photos_probabilities_do_not_depend_on_the_photos_batched_with_it(tmp_path, checkpoint):
    """A network's float32 results shift in their last bits with the batch size (timm's
    test_convnext does at 1 against 2 or more): each photo is its own model call, so the
    probabilities written are the same bytes whatever --batch-size and neighbours it had."""
    save_photos(tmp_path / "photos", 5)
    outputs = []
    for batch_size in (1, 4):
        out = tmp_path / f"batch{batch_size}"
        _run(ImagePredictConfig(data_dir=tmp_path / "photos", checkpoint=checkpoint, crop_images=False, batch_size=batch_size, num_workers=0, save_dir=out))
        outputs.append((out / "zamba_predictions.csv").read_bytes())
    assert outputs[0] == outputs[1]


def test_each_photo_is_classified_on_its_own_and_a_failing_one_costs_only_itself():
    from kifaru.runs.image_predict import classify_photos

    class BatchSensitive:
        """Stands in for a network whose results depend on the size of the call."""

        def __init__(self):
            self.calls = []

        def predict_proba(self, inputs):
            self.calls.append(len(inputs))
            if np.isnan(inputs).any():
                raise ValueError("NaN input")
            return np.full((len(inputs), 2), 1.0 / len(inputs))

    network = BatchSensitive()
    photos = [np.zeros((2, 3, 4, 4)), np.full((1, 3, 4, 4), np.nan), np.zeros((1, 3, 4, 4))]
    first, failed, last = classify_photos(network, photos)
    assert network.calls == [2, 1, 1]  # a call per photo
    assert first.shape == (2, 2) and last.shape == (1, 2)
    assert failed == "the model failed on its crops (ValueError: NaN input)"
