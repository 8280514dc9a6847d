"""``kifaru detect``'s detections.json against MegaDetector's own validator (megadetector-utils'
``validate_batch_results``), with every file it names checked to exist under ``--data-dir``.

Only the command line and the output file are used (not kifaru.runs.detect's functions), with the real
MegadetectorLite so that there are boxes to validate. Skipped without the validator (see
``tests.helpers.megadetector_format``: ``MEGADETECTOR_PYTHON``) or without the detector's weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from kifaru.cli import EXIT_FAILED, main
from tests.detection.md_format import md_batch_errors
from tests.helpers.megadetector_format import megadetector_validation, require_megadetector_validator, validate_megadetector_json
from tests.media import animal_picture, make_animal_clip, make_clip

DETECTIONS_JSON = "detections.json"  # the name the README gives


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """A clip with the animal at two sampled frames, a blank clip in a folder with a space in its
    name, a file no decoder can read, and a photo of the animal."""
    folder = tmp_path_factory.mktemp("media")
    make_animal_clip(folder / "cat.mp4", animal_at=[0, 4], n_frames=8, fps=4)  # 1 fps samples 0 and 4
    make_clip(folder / "sub dir" / "blank.avi", codec="mjpeg")
    (folder / "broken.mp4").write_bytes(b"not a video at all " * 20)
    Image.fromarray(animal_picture()).save(folder / "photo.jpg", quality=95)
    return folder


@pytest.fixture(scope="module")
def detections(media, tmp_path_factory, request) -> Path:
    """detections.json of ``kifaru detect --data-dir media``."""
    require_megadetector_validator()  # first: without a validator, no detector to load
    request.getfixturevalue("megadetector_lite")  # skips without the weights (never downloads)
    out = tmp_path_factory.mktemp("out")
    assert main(["detect", "--data-dir", str(media), "--save-dir", str(out)]) == EXIT_FAILED  # broken.mp4
    return out / DETECTIONS_JSON


def _entries(path: Path) -> dict[str, dict]:
    return {entry["file"]: entry for entry in json.loads(path.read_text(encoding="utf-8"))["images"]}


def test_detect_output_passes_megadetector_validator(detections, media):
    validate_megadetector_json(detections, image_root=media)
    # What the validator went through covers each of its branches (so that passing means something):
    # a failure, a video with boxes (frame numbers), a video without, an image with boxes.
    entries = _entries(detections)
    assert sorted(entries) == ["broken.mp4", "cat.mp4", "photo.jpg", "sub dir/blank.avi"]
    assert isinstance(entries["broken.mp4"].get("failure"), str)
    assert entries["cat.mp4"]["detections"] and entries["photo.jpg"]["detections"]
    # Boxes are kept down to 0.05: the blank clip's, if any, are all weak.
    assert all(d["conf"] < 0.25 for d in entries["sub dir/blank.avi"]["detections"])
    counts = megadetector_validation(detections, image_root=media)["detection_counts"]
    assert sum(counts.values()) == sum(len(entry["detections"] or []) for entry in entries.values())


def _classified(data: dict, classifications: list, categories: dict) -> None:
    data["classification_categories"] = categories
    data["images"][_position(data, "cat.mp4")]["detections"][0]["classifications"] = classifications


def _position(data: dict, file: str) -> int:
    return [entry["file"] for entry in data["images"]].index(file)


def _entry(data: dict, file: str) -> dict:
    return data["images"][_position(data, file)]


# Each breaks one rule the real validator enforces, and the message it gives.
BREAKAGES = {
    "failure with detections []": (lambda d: _entry(d, "broken.mp4").update(detections=[]), "failure value but a non-null detections array"),
    "failure without detections": (lambda d: _entry(d, "broken.mp4").pop("detections"), "should also have a null detections array"),
    "failed video without frame_rate": (lambda d: _entry(d, "broken.mp4").pop("frame_rate"), "Video without frame rate: broken.mp4"),
    "video without frames_processed": (lambda d: _entry(d, "cat.mp4").pop("frames_processed"), "Video without frames_processed field: cat.mp4"),
    "video box without frame_number": (lambda d: _entry(d, "cat.mp4")["detections"][0].pop("frame_number"), "Frame without frame number in video cat.mp4"),
    "an int confidence": (lambda d: _entry(d, "photo.jpg")["detections"][0].update(conf=1), "illegal confidence value"),
    "an unknown category": (lambda d: _entry(d, "photo.jpg")["detections"][0].update(category="9"), "unmapped category 9"),
    "format_version not a str": (lambda d: d["info"].update(format_version=1.6), "format_version is not a string"),
    "a top-level key of our own": (lambda d: d.update(kifaru={}), "non-standard key kifaru"),
    "classifications without categories": (lambda d: _entry(d, "cat.mp4")["detections"][0].update(classifications=[["0", 0.9]]), "classification_categories"),
    "a classification id not a str": (lambda d: _classified(d, [[0, 0.9]], {"0": "cat"}), "illegal classification category"),
    "a classification score not a number": (lambda d: _classified(d, [["0", "0.9"]], {"0": "cat"}), "isinstance(c[1],float)"),
}


@pytest.mark.parametrize("name", BREAKAGES)
def test_the_validator_rejects_a_broken_copy(detections, media, tmp_path, name):
    """The helper reports what the validator finds (so the test above can fail), and
    tests/detection/md_format.py, which runs without megadetector-utils, finds it too."""
    mutate, message = BREAKAGES[name]
    data = json.loads(detections.read_text(encoding="utf-8"))
    found_before = set(md_batch_errors(data))
    mutate(data)
    broken = tmp_path / DETECTIONS_JSON
    broken.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(AssertionError, match="MegaDetector's validator rejects") as raised:
        validate_megadetector_json(broken, image_root=media)
    assert message in str(raised.value)
    assert set(md_batch_errors(data)) - found_before, f"md_format misses: {message}"


def test_a_classified_copy_passes(detections, media, tmp_path):
    """Classifications as the format has them: [[category id as a str, score], ...] per box."""
    data = json.loads(detections.read_text(encoding="utf-8"))
    _classified(data, [["1", 0.9], ["0", 0.1]], {"0": "blank", "1": "cat"})
    classified = tmp_path / DETECTIONS_JSON
    classified.write_text(json.dumps(data), encoding="utf-8")
    validate_megadetector_json(classified, image_root=media)
    assert megadetector_validation(classified)["classification_counts"] == {"1": 1, "0": 1}


def test_every_file_named_must_be_under_the_image_root(detections, media, tmp_path):
    data = json.loads(detections.read_text(encoding="utf-8"))
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    validate_megadetector_json(detections)  # no root: the files are not looked for
    with pytest.raises(AssertionError, match="Cannot find file"):
        validate_megadetector_json(detections, image_root=moved)
    _entry(data, "photo.jpg")["file"] = "gone.jpg"
    renamed = tmp_path / DETECTIONS_JSON
    renamed.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(AssertionError, match="Cannot find file .*gone.jpg"):
        validate_megadetector_json(renamed, image_root=media)
