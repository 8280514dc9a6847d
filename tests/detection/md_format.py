"""A local re-implementation of MegaDetector's ``validate_batch_results.py`` (megadetector 10.0.28)
for batch-output format 1.6, plus the stricter rules the format's spec asks for but the validator
does not enforce (range of boxes and confidences, frame numbers among the frames processed...).

``md_batch_errors(data)`` returns every problem found (the real validator stops at the first);
an empty list means the file passes.
"""

from __future__ import annotations

import re
from typing import Any

# validate_batch_results: video files are recognised by extension only (video_utils.VIDEO_EXTENSIONS).
MD_VIDEO_EXTENSIONS = (".mp4", ".avi", ".mpeg", ".mpg", ".mov", ".mkv", ".flv")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
STANDARD_KEYS = {"info", "images", "detection_categories", "classification_categories", "classification_category_descriptions"}


def _is_md_video(file: str) -> bool:
    return file.lower().endswith(MD_VIDEO_EXTENSIONS)


def _category_errors(name: str, categories: Any, version: float) -> list[str]:
    if not isinstance(categories, dict):
        return [f"{name} is not a dict"]
    errors = []
    for key, value in categories.items():
        if not isinstance(key, str):
            errors.append(f"{name}: key {key!r} is not a str")
            continue
        try:
            int(key)
        except ValueError:
            errors.append(f"{name}: key {key!r} is not an int in a str")
        if not isinstance(value, str):
            errors.append(f"{name}[{key}]: value {value!r} is not a str")
        elif version >= 1.6 and not value.strip():
            errors.append(f"{name}[{key}]: blank name")
    return errors


def md_batch_errors(data: Any, *, strict: bool = True) -> list[str]:
    """Problems of a MegaDetector batch-output dict; ``strict`` adds the spec's own rules."""
    # 1. top level and info
    if not isinstance(data, dict):
        return ["top level is not a dict"]
    info = data.get("info")
    if not isinstance(info, dict):
        return ["no info dict"]
    if "format_version" not in info:
        return ["no info.format_version"]
    raw_version = info["format_version"]
    try:
        version = float(raw_version)
    except (TypeError, ValueError):
        return [f"format_version {raw_version!r} is not a number"]
    errors: list[str] = []
    if version < 1.3:
        errors.append(f"format_version {raw_version} is below 1.3")
    if version >= 1.6 and not isinstance(raw_version, str):
        errors.append(f"format_version {raw_version!r} must be a str from 1.6 on")

    # 2-3. category maps
    if "detection_categories" not in data:
        errors.append("no detection_categories")
        detection_categories: dict = {}
    else:
        detection_categories = data["detection_categories"]
        errors += _category_errors("detection_categories", detection_categories, version)
        if not isinstance(detection_categories, dict):
            detection_categories = {}
    classification_categories = data.get("classification_categories")
    if classification_categories is not None:
        errors += _category_errors("classification_categories", classification_categories, version)

    # 10. unknown top-level keys (a warning in the real validator: an error here)
    errors += [f"non-standard top-level key {key!r}" for key in data if key not in STANDARD_KEYS]

    # 4. images
    images = data.get("images")
    if not isinstance(images, list):
        return errors + ["images is missing or not a list"]
    for position, entry in enumerate(images):
        if not isinstance(entry, dict) or "file" not in entry:
            errors.append(f"images[{position}] is not a dict with a 'file'")
            continue
        errors += [f"{entry['file']}: {problem}" for problem in _entry_errors(entry, version, detection_categories, classification_categories, strict)]

    if strict:
        errors += _strict_info_errors(info)
    return errors


def _entry_errors(entry: dict, version: float, categories: dict, classification_categories: Any, strict: bool) -> list[str]:
    errors: list[str] = []
    file = entry["file"]
    detections = entry.get("detections")

    # 7. failures
    if entry.get("failure") is not None:
        if not isinstance(entry["failure"], str):
            errors.append("failure is not a str")
        if detections is not None:
            errors.append("a failed file has non-null detections")
    elif "failure" not in entry:
        if "detections" not in entry:
            errors.append("no 'detections'")
        elif not isinstance(detections, list):
            errors.append("detections is not a list")

    # 5. detections
    for detection in detections if isinstance(detections, list) else []:
        missing = [key for key in ("category", "conf", "bbox") if key not in detection]
        if missing:
            errors.append(f"detection without {missing}")
            continue
        if not isinstance(detection["conf"], float):
            errors.append(f"conf {detection['conf']!r} is not a float")
        if detection["category"] not in categories:
            errors.append(f"category {detection['category']!r} is not in detection_categories")
        for classification in detection.get("classifications") or []:
            if classification_categories is None:
                errors.append("classifications without classification_categories")
                break
            if not isinstance(classification[0], str) or classification[0] not in classification_categories:
                errors.append(f"classification {classification!r} has an unknown category")
            if not isinstance(classification[1], (float, int)):
                errors.append(f"classification {classification!r} has a non-number confidence")

    # 8-9. videos
    if _is_md_video(file):
        if version >= 1.5 and "frames_processed" not in entry:
            errors.append("video without frames_processed")
        if version >= 1.4:
            if "frame_rate" not in entry:
                errors.append("video without frame_rate")
            elif entry["frame_rate"] is None:
                errors.append("frame_rate is None")
            elif entry["frame_rate"] < 0 and "failure" not in entry:
                errors.append("negative frame_rate without a failure")
            for detection in detections if isinstance(detections, list) else []:
                if "frame_number" not in detection:
                    errors.append("video detection without frame_number")

    if strict:
        errors += _strict_entry_errors(entry)
    return errors


def _strict_entry_errors(entry: dict) -> list[str]:
    """The spec's rules and our writer's checklist (the note's section 6 'stricter' and 8)."""
    errors: list[str] = []
    file = entry["file"]
    failed = entry.get("failure") is not None
    if "\\" in file:
        errors.append("path with backslashes")
    # Timelapse matches an entry to a file by its path under the root folder it opened: an
    # absolute path, or one climbing out of that folder, matches nothing, silently.
    if file.startswith("/") or re.match(r"[A-Za-z]:", file):
        errors.append("absolute path (paths are relative to Timelapse's root folder)")
    elif ".." in file.split("/"):
        errors.append("path outside the root folder ('..')")
    # kifaru's own per-file key (the format has none for notes; readers ignore keys they do not know)
    if "notes" in entry:
        notes = entry["notes"]
        if not isinstance(notes, list) or not notes or not all(isinstance(n, str) and n for n in notes):
            errors.append(f"notes {notes!r} is not a list of words (left out when there are none)")
    image = file.lower().endswith(IMAGE_EXTENSIONS)
    if image:
        stray = [key for key in ("frame_rate", "frames_processed") if key in entry]
        if stray:
            errors.append(f"image entry with video fields {stray}")
    else:
        if "frame_rate" not in entry or "frames_processed" not in entry:
            errors.append("video entry without frame_rate/frames_processed")
            return errors
        if failed:
            if entry["frame_rate"] != -1.0 or not isinstance(entry["frame_rate"], float):
                errors.append(f"failed video: frame_rate {entry['frame_rate']!r}, expected -1.0")
            if entry["frames_processed"] != []:
                errors.append("failed video: frames_processed is not []")
        else:
            rate = entry["frame_rate"]
            if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not rate > 0:
                errors.append(f"frame_rate {rate!r} is not > 0")
            processed = entry["frames_processed"]
            if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in processed):
                errors.append("frames_processed holds something other than ints >= 0")
            elif processed != sorted(set(processed)):
                errors.append("frames_processed is not sorted and unique")
    if failed:
        if "detections" not in entry or entry["detections"] is not None:
            errors.append("failed entry: detections must be null")
        return errors
    if not isinstance(entry.get("detections"), list):
        errors.append("a processed file's detections must be a list ([] when none)")
        return errors
    for detection in entry["detections"]:
        conf, bbox = detection.get("conf"), detection.get("bbox")
        if not isinstance(conf, float) or not 0.0 <= conf <= 1.0 or round(conf, 3) != conf:
            errors.append(f"conf {conf!r} is not a float in [0, 1] rounded to 3 digits")
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, float) and 0.0 <= v <= 1.0 and round(v, 4) == v for v in bbox)
        ):
            errors.append(f"bbox {bbox!r} is not 4 floats in [0, 1] rounded to 4 digits")
        else:
            x, y, w, h = bbox
            if x + w > 1.0 + 2e-4 or y + h > 1.0 + 2e-4:
                errors.append(f"bbox {bbox!r} reaches past the frame ([x, y, w, h] expected)")
        if image:
            if "frame_number" in detection:
                errors.append("image detection with a frame_number")
        else:
            number = detection.get("frame_number")
            if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                errors.append(f"frame_number {number!r} is not an int >= 0")
            elif number not in entry["frames_processed"]:
                errors.append(f"frame_number {number} is not in frames_processed")
    return errors


def _strict_info_errors(info: dict) -> list[str]:
    errors = []
    if not info.get("detector"):
        errors.append("info.detector missing")
    completion = info.get("detection_completion_time")
    if not isinstance(completion, str) or not re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", completion):
        errors.append(f"info.detection_completion_time {completion!r} is not '%Y-%m-%d %H:%M:%S'")
    metadata = info.get("detector_metadata")
    keys = ("megadetector_version", "typical_detection_threshold", "conservative_detection_threshold")
    if not isinstance(metadata, dict) or any(key not in metadata for key in keys):
        errors.append(f"info.detector_metadata needs {keys} (Timelapse reads them)")
    return errors


def assert_valid_md_batch(data: Any) -> None:
    errors = md_batch_errors(data)
    assert not errors, "MegaDetector batch output is invalid:\n  " + "\n  ".join(errors)
