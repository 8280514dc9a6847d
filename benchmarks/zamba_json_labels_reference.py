"""Reference rows for kifaru.train.json_labels, made by zamba 2.7.2's own bbox_json_to_df.

Run with zamba's Python (benchmarks/zamba_setup.sh makes it), from the repository root:

    ~/.cache/kifaru-bench/zamba-venv/bin/python benchmarks/zamba_json_labels_reference.py

It writes tests/fixtures/zamba_images/json_labels_cases.json: COCO and MegaDetector labels
documents (several boxes on one photo, an annotation without a box, a detection without
classifications, boxes of no width, a photo without detections) and, for each, the rows
(filepath, label, x1, y1, x2, y2) zamba's image training reads from it.
"""

import json
from pathlib import Path

from zamba.images.bbox import BboxInputFormat, bbox_json_to_df

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "zamba_images" / "json_labels_cases.json"

COCO = {
    "images": [
        {"id": 1, "file_name": "site_a/0001.jpg", "width": 640, "height": 480, "seq_id": "s1", "location": "a"},
        {"id": 2, "file_name": "site_a/0002.jpg", "width": 640, "height": 480, "seq_id": "s1", "location": "a"},
        {"id": 7, "file_name": "site_b/0003.jpg", "width": 640, "height": 480, "seq_id": "s2", "location": "b"},
        {"id": 9, "file_name": "site_b/0004.jpg", "width": 640, "height": 480, "seq_id": "s3", "location": "b"},
    ],
    "annotations": [
        {"id": 10, "image_id": 1, "category_id": 3, "bbox": [10, 20, 100, 50]},
        {"id": 11, "image_id": 1, "category_id": 5, "bbox": [300.5, 200, 40.25, 80]},
        {"id": 12, "image_id": 2, "category_id": 3, "bbox": [0, 0, 640, 480]},
        {"id": 13, "image_id": 7, "category_id": 5},  # no box: zamba drops it
    ],
    "categories": [{"id": 3, "name": "Grey Fox"}, {"id": 5, "name": "American Crow"}, {"id": 8, "name": "empty"}],
}
MEGADETECTOR = {
    "info": {"format_version": "1.4"},
    "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
    "classification_categories": {"0": "Chicken", "1": "Striped Skunk"},
    "images": [
        {"file": "c/1.jpg", "detections": [
            {"category": "1", "conf": 0.9, "bbox": [0.1, 0.2, 0.3, 0.4], "classifications": [["1", 0.8], ["0", 0.1]]},
            {"category": "1", "conf": 0.5, "bbox": [0.5, 0.5, 0.25, 0.25], "classifications": [["0", 0.7]]},
        ]},
        {"file": "c/2.jpg", "detections": [{"category": "1", "conf": 0.4, "bbox": [0.1, 0.1, 0.2, 0.2]}]},  # no classifications
        {"file": "c/3.jpg", "detections": [{"category": "1", "conf": 0.4, "bbox": [0.1, 0.1, 0.0, 0.2], "classifications": [["0", 0.9]]}]},
        {"file": "c/4.jpg", "detections": []},
        {"file": "c/5.jpg", "failure": "Failure image access"},
    ],
}


def rows(document, bbox_format):
    table = bbox_json_to_df(document, bbox_format=bbox_format)
    return [
        {"filepath": r["filepath"], "label": r["label"], **{k: float(r[k]) for k in ("x1", "y1", "x2", "y2")}}
        for _, r in table.iterrows()
    ]


def main():
    cases = {
        "coco": {"labels_format": "coco", "document": COCO, "zamba_rows": rows(COCO, BboxInputFormat.COCO)},
        "megadetector": {"labels_format": "megadetector", "document": MEGADETECTOR, "zamba_rows": rows(MEGADETECTOR, BboxInputFormat.MEGADETECTOR)},
    }
    OUT.write_text(json.dumps(cases, indent=1) + "\n")
    print(f"wrote {OUT}: " + ", ".join(f"{name} {len(case['zamba_rows'])} rows" for name, case in cases.items()))


if __name__ == "__main__":
    main()
