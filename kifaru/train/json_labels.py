"""Image training labels from a JSON file, as the rows a labels CSV would hold.

zamba's two ``labels_format`` s:

- ``coco``: COCO (and COCO Camera Traps, LILA's format): ``images`` (``id``, ``file_name``),
  ``annotations`` (``image_id``, ``category_id``, optional ``bbox`` as x, y, width, height in
  pixels), ``categories`` (``id``, ``name``). Each annotation is a row: a box gives a crop of its
  class. zamba drops an annotation without a box; kifaru labels the whole photo with it (COCO
  Camera Traps keeps image-level labels, ``empty`` among them, that way), and says how many; in a
  file where no annotation has a box the labels are per photo, and the detector finds the crops
  (``crop_images``) as for a CSV of ``filepath, label``.
- ``megadetector``: a MegaDetector results file with classifications: each detection with a
  ``classifications`` list is a row of its most likely class (``classification_categories``),
  its box relative (0-1) to the photo.

The rows are ``filepath, label, x1, y1, x2, y2`` (pixels for COCO, relative for MegaDetector, as
the CSV's box columns), and a COCO image's own scalar fields (COCO Camera Traps' ``seq_id``,
``location``, ...) as further columns, so ``split_by: location`` and sequences work as in a CSV. What is left out is counted in the returned notes, never dropped unsaid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from kifaru.config.image import LabelsFormat
from kifaru.exceptions import ConfigError

ROW_COLUMNS = ["filepath", "label", "x1", "y1", "x2", "y2"]
WHOLE_PHOTO = (0.0, 0.0, 1.0, 1.0)  # relative: the photo as it is shown
_NOT_COLUMNS = {"id", "file_name", "width", "height", *ROW_COLUMNS}


def read_json_label_rows(labels: Path, labels_format: LabelsFormat) -> tuple[list[str], list[dict[str, str]], list[str]]:
    """(columns, rows, notes) of a JSON labels file; ConfigError naming the file and the entry at fault."""
    try:
        document = json.loads(Path(labels).read_text(encoding="utf-8-sig"))
    except OSError as error:
        raise ConfigError(f"labels {labels}: cannot read it ({error.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"labels {labels}: not a readable JSON file ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise ConfigError(f"labels {labels}: a {labels_format.value} labels file needs an 'images' list at its top level")
    read = _coco_rows if labels_format == LabelsFormat.coco else _megadetector_rows
    rows, notes = read(labels, document)
    if not rows:
        raise ConfigError(f"labels {labels}: no usable label in it ({'; '.join(notes) or 'no annotations'})")
    columns = ROW_COLUMNS if any("x1" in row for row in rows) else ROW_COLUMNS[:2]
    extra = sorted({key for row in rows for key in row} - set(ROW_COLUMNS))
    return columns + extra, rows, notes


def _row(filepath: str, label: str, box: Optional[tuple[float, float, float, float]]) -> dict[str, str]:
    """A labels row; ``box`` None: an image-level label (the whole photo where other rows have boxes)."""
    if box is None:
        return {"filepath": filepath, "label": label}
    return dict(zip(ROW_COLUMNS, [filepath, label, *(repr(float(v)) for v in box)]))


def _entries(labels: Path, document: dict[str, Any], key: str, needed: tuple[str, ...], hint: str) -> list[dict[str, Any]]:
    entries = document.get(key)
    if not isinstance(entries, list):
        raise ConfigError(f"labels {labels}: needs a '{key}' list ({hint})")
    for number, entry in enumerate(entries):
        missing = [k for k in needed if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise ConfigError(f"labels {labels}: {key}[{number}] has no {', '.join(missing)} ({hint})")
    return entries


def _coco_rows(labels: Path, document: dict[str, Any]) -> tuple[list[dict[str, str]], list[str]]:
    hint = "is labels_format right? COCO has images, annotations and categories"
    image_entries = _entries(labels, document, "images", ("id", "file_name"), hint)
    images = {entry["id"]: str(entry["file_name"]) for entry in image_entries}
    # An image's own fields (COCO Camera Traps: seq_id, location, ...) as columns, for split_by and sequences.
    fields = {
        entry["id"]: {k: str(v) for k, v in entry.items() if k not in _NOT_COLUMNS and isinstance(v, (str, int, float)) and not isinstance(v, bool)}
        for entry in image_entries
    }  # fmt: skip
    categories = {entry["id"]: str(entry["name"]) for entry in _entries(labels, document, "categories", ("id", "name"), hint)}
    rows, whole, empty_boxes = [], 0, 0
    annotated = set()
    for number, annotation in enumerate(_entries(labels, document, "annotations", ("image_id", "category_id"), hint)):
        where = f"labels {labels}: annotations[{number}]"
        if annotation["image_id"] not in images:
            raise ConfigError(f"{where} names image_id {annotation['image_id']!r}, which is not in images")
        if annotation["category_id"] not in categories:
            raise ConfigError(f"{where} names category_id {annotation['category_id']!r}, which is not in categories")
        filepath, label, more = images[annotation["image_id"]], categories[annotation["category_id"]], fields[annotation["image_id"]]
        annotated.add(annotation["image_id"])
        bbox = annotation.get("bbox")
        if bbox is None:
            rows.append(_row(filepath, label, None) | more)
            whole += 1
            continue
        x, y, width, height = _four_numbers(bbox, where)
        if width <= 0 or height <= 0:
            empty_boxes += 1
            continue
        rows.append(_row(filepath, label, (x, y, x + width, y + height)) | more)
    notes = []
    if whole and whole < len(rows):
        rows = [row if "x1" in row else row | _row(row["filepath"], row["label"], WHOLE_PHOTO) for row in rows]
        notes.append(f"{whole} annotation(s) without a bbox label their whole photo")
    if empty_boxes:
        notes.append(f"{empty_boxes} annotation(s) with a box of no width or height left out")
    unannotated = len(set(images) - annotated)
    if unannotated:
        notes.append(f"{unannotated} image(s) without an annotation: not used")
    return rows, notes


def _megadetector_rows(labels: Path, document: dict[str, Any]) -> tuple[list[dict[str, str]], list[str]]:
    hint = "is labels_format right? a MegaDetector file has images with file and detections"
    categories = document.get("classification_categories")
    if not isinstance(categories, dict) or not categories:
        raise ConfigError(f"labels {labels}: a MegaDetector labels file needs 'classification_categories' (the class of each id) and classifications on its detections")
    rows, unclassified, empty_boxes, without = [], 0, 0, 0
    for number, image in enumerate(_entries(labels, document, "images", ("file",), hint)):
        detections = image.get("detections") or []
        if not detections:
            without += 1
        for index, detection in enumerate(detections):
            where = f"labels {labels}: images[{number}].detections[{index}]"
            classifications = detection.get("classifications")
            if not classifications:
                unclassified += 1
                continue
            best = max(classifications, key=lambda pair: pair[1])[0]
            if str(best) not in categories:
                raise ConfigError(f"{where} has class '{best}', which is not in classification_categories")
            x, y, width, height = _four_numbers(detection.get("bbox"), where)
            if width <= 0 or height <= 0:
                empty_boxes += 1
                continue
            rows.append(_row(str(image["file"]), str(categories[str(best)]), (x, y, x + width, y + height)))
    notes = []
    if unclassified:
        notes.append(f"{unclassified} detection(s) without classifications left out")
    if empty_boxes:
        notes.append(f"{empty_boxes} detection(s) with a box of no width or height left out")
    if without:
        notes.append(f"{without} image(s) without detections (or failed): not used")
    return rows, notes


def _four_numbers(bbox: Any, where: str) -> tuple[float, float, float, float]:
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
        raise ConfigError(f"{where}: bbox {bbox!r} is not four numbers (x, y, width, height)")
    return tuple(float(v) for v in bbox)  # type: ignore[return-value]
