"""JSON labels for image training (zamba's labels_format coco / megadetector): the same rows as
zamba 2.7.2 reads (tests/fixtures/zamba_images/json_labels_cases.json, made by
benchmarks/zamba_json_labels_reference.py), what zamba drops kept or counted, bad files named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kifaru.config.image import LabelsFormat
from kifaru.exceptions import ConfigError
from kifaru.train.image_labels import read_image_labels
from kifaru.train.json_labels import WHOLE_PHOTO, read_json_label_rows

CASES = json.loads((Path(__file__).parents[1] / "fixtures" / "zamba_images" / "json_labels_cases.json").read_text())


def _write(path: Path, document) -> Path:
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return path


def _boxed(rows: list[dict[str, str]]) -> list[dict]:
    return [{"filepath": r["filepath"], "label": r["label"], **{k: float(r[k]) for k in ("x1", "y1", "x2", "y2")}} for r in rows]


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_boxes_zamba_reads_are_kifaru_s(name, tmp_path):
    case = CASES[name]
    _, rows, notes = read_json_label_rows(_write(tmp_path / "labels.json", case["document"]), LabelsFormat(case["labels_format"]))
    given = [row for row in _boxed(rows) if (row["x1"], row["y1"], row["x2"], row["y2"]) != WHOLE_PHOTO]
    assert given == case["zamba_rows"]
    if name == "megadetector":  # what zamba drops unsaid, counted
        assert notes == [
            "1 detection(s) without classifications left out",
            "1 detection(s) with a box of no width or height left out",
            "2 image(s) without detections (or failed): not used",
        ]


def test_a_coco_annotation_without_a_box_labels_its_whole_photo(tmp_path):
    """zamba drops it (its crow on site_b/0003.jpg); COCO Camera Traps labels photos that way."""
    labels = _write(tmp_path / "labels.json", CASES["coco"]["document"])
    columns, rows, notes = read_json_label_rows(labels, LabelsFormat.coco)
    whole = [r for r in _boxed(rows) if r["filepath"] == "site_b/0003.jpg"]
    assert whole == [{"filepath": "site_b/0003.jpg", "label": "American Crow", **dict(zip(("x1", "y1", "x2", "y2"), WHOLE_PHOTO))}]
    assert notes == ["1 annotation(s) without a bbox label their whole photo", "1 image(s) without an annotation: not used"]
    assert columns == ["filepath", "label", "x1", "y1", "x2", "y2", "location", "seq_id"]

    photos = read_image_labels(labels, tmp_path / "data", split_by="location")
    assert [Path(f).relative_to(tmp_path / "data").as_posix() for f in photos.filepaths] == ["site_a/0001.jpg", "site_a/0002.jpg", "site_b/0003.jpg"]
    assert photos.species == ["american crow", "grey fox"] and photos.targets.tolist() == [[1, 1], [0, 1], [1, 0]]
    assert photos.seq_ids == ["s1", "s1", "s2"] and photos.groups == ["a", "a", "b"]
    assert photos.boxes[0] == [((10.0, 20.0, 110.0, 70.0), "grey fox"), ((300.5, 200.0, 340.75, 280.0), "american crow")]
    assert photos.notes[:1] == ["1 annotation(s) without a bbox label their whole photo"]


def test_coco_without_any_box_gives_labels_per_photo_for_the_detector(tmp_path):
    document = {
        "images": [{"id": "a", "file_name": "a.jpg"}, {"id": "b", "file_name": "b.jpg"}],
        "annotations": [{"id": 1, "image_id": "a", "category_id": 0}, {"id": 2, "image_id": "b", "category_id": 1}],
        "categories": [{"id": 0, "name": "empty"}, {"id": 1, "name": "zebra"}],
    }  # fmt: skip
    photos = read_image_labels(_write(tmp_path / "cct.json", document), tmp_path)
    assert photos.boxes is None and photos.species == ["empty", "zebra"] and photos.targets.tolist() == [[1, 0], [0, 1]]
    assert photos.notes == []


@pytest.mark.parametrize(
    ("document", "labels_format", "message"),
    [
        ("{not json", "coco", r"labels .*labels.json: not a readable JSON file"),
        ({"annotations": []}, "coco", r"needs an 'images' list"),
        ({"images": [{"id": 1}], "annotations": [], "categories": []}, "coco", r"images\[0\] has no file_name"),
        (
            {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 2, "category_id": 1}], "categories": [{"id": 1, "name": "x"}]},
            "coco", r"annotations\[0\] names image_id 2, which is not in images",
        ),
        (
            {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "category_id": 4}], "categories": [{"id": 1, "name": "x"}]},
            "coco", r"annotations\[0\] names category_id 4, which is not in categories",
        ),
        (
            {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3]}], "categories": [{"id": 1, "name": "x"}]},
            "coco", r"annotations\[0\]: bbox \[1, 2, 3\] is not four numbers",
        ),
        ({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [], "categories": []}, "coco", r"no usable label in it \(1 image\(s\) without an annotation"),
        (CASES["coco"]["document"], "megadetector", r"needs 'classification_categories'"),
        (CASES["megadetector"]["document"], "coco", r"images\[0\] has no id, file_name \(is labels_format right"),
    ],
)  # fmt: skip
def test_bad_json_labels_are_named(document, labels_format, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        read_image_labels(_write(tmp_path / "labels.json", document), tmp_path, labels_format=LabelsFormat(labels_format))


def test_the_real_ena24_coco_and_megadetector_labels_agree(tmp_path):
    """The shared ENA24 photos' two label files name the same photos and classes."""
    folder = Path(__file__).parents[2].parent / "shared" / "data" / "zamba-test-assets" / "images" / "ena24_small"
    if not folder.is_dir():
        pytest.skip("../shared/data is not here")
    coco = read_image_labels(folder / "coco_annotations.json", folder)
    md = read_image_labels(folder / "md_annotations.json", folder, labels_format=LabelsFormat.megadetector)
    assert coco.filepaths == md.filepaths and len(coco.filepaths) == 21
    assert [s.replace(" ", "_") for s in coco.species] == md.species
    assert (coco.targets == md.targets).all()
