"""MegaDetector batch output, format 1.6, which Timelapse and MegaDetector's tools read.

One entry per image or video: videos carry ``frame_rate``, ``frames_processed`` (the frames the
detector scored) and a ``frame_number`` per detection. Boxes are kept down to the detector's
kept-box threshold, so that users can explore thresholds in Timelapse, while frame selection used
the config's ``confidence`` (both are in ``info``). With a classifier, the clip's species are
given to each of its detections as ``classifications`` (``[[category id, probability], ...]``,
most likely first) with ``classification_categories``, so Timelapse shows species per video.
A file without a result has a ``failure`` string and ``detections: null`` (and ``frame_rate``
-1). The format has no field for notes: a file's are in an extra ``notes`` list in its entry
(readers ignore keys they do not know). A partial run says so in ``info.custom_metadata``. With sequences (bursts), each photo's entry has
its ``seq_id`` and ``info.custom_metadata.sequences`` lists the sequences with their files and
their most likely classes as one event.
"""

from __future__ import annotations

import time
from typing import Any, Optional, Sequence

from kifaru.outputs import RunDescription, register_writer
from kifaru.outputs.paths import relative_path
from kifaru.runs.records import MEDIA_VIDEO, Record

ANIMAL_CATEGORY = "1"
# MegaDetector's own map (only "1" is ever used here): Timelapse refuses to merge recognitions whose
# category maps differ, so a file from kifaru and one from MegaDetector/AddaxAI must share it.
DETECTION_CATEGORIES = {ANIMAL_CATEGORY: "animal", "2": "person", "3": "vehicle"}
CLASSIFICATIONS_PER_DETECTION = 5  # the most likely species given with each box of a clip
CLASSIFICATIONS_PER_CROP = 3  # zamba's image output: each crop's top 3


@register_writer("megadetector_json", "detections.json", "MegaDetector batch output 1.6 (Timelapse), with species when classified")
def megadetector_json(records: Sequence[Record], run: RunDescription) -> dict[str, Any] | str:
    import json

    return json.dumps(megadetector_data(records, run), indent=1, ensure_ascii=False) + "\n"


def megadetector_data(records: Sequence[Record], run: RunDescription) -> dict[str, Any]:
    from kifaru.video.loader import KEPT_BOX_THRESHOLD

    detector = run.loader_config.megadetector_lite_config if run.loader_config is not None else None
    kept = min(detector.confidence, KEPT_BOX_THRESHOLD) if detector is not None else KEPT_BOX_THRESHOLD
    if run.detector is not None:  # photos: the boxes were kept down to the detector's own threshold
        kept = run.detector["boxes_kept_down_to"]
    images = [_entry(record, run, kept) for record in records]
    info = _info(run, detector, kept)
    if run.sequences is not None:
        info["custom_metadata"]["sequences"] = _sequences(records, run)
    data: dict[str, Any] = {"info": info, "detection_categories": dict(DETECTION_CATEGORIES)}
    if run.species:
        data["classification_categories"] = {str(i): name for i, name in enumerate(run.species)}
    data["images"] = images
    return data


def _entry(record: Record, run: RunDescription, kept: float) -> dict[str, Any]:
    entry: dict[str, Any] = {"file": _file_name(record.item, run)}
    video = record.media == MEDIA_VIDEO
    if video:
        entry["frame_rate"] = -1.0 if record.failed else float(record.frame_rate or -1.0)
        processed = [f["frame_number"] for f in record.frames] or sorted(set(record.frames_used))
        entry["frames_processed"] = [] if record.failed else processed
    if record.failed:
        entry["failure"] = record.reason
        entry["detections"] = None
    elif "crops" in record.outputs:  # a photo: each crop's own species
        by_detection = {c["detection"]: c for c in record.outputs["crops"] if c.get("detection") is not None}
        entry["detections"] = []
        for frame in record.frames:
            categories = frame.get("categories") or [ANIMAL_CATEGORY] * len(frame["detections"])
            for number, (d, category) in enumerate(zip(frame["detections"], categories)):
                crop = by_detection.get(number)
                animal = crop is not None and category == ANIMAL_CATEGORY  # zamba classifies animals only
                classes = _classifications(crop.get("probabilities"), CLASSIFICATIONS_PER_CROP) if animal else None
                entry["detections"].append(_detection(d, None, classes, category))
    else:
        classifications = _classifications(record.probabilities)
        entry["detections"] = [
            _detection(d, f["frame_number"] if video else None, classifications)
            for f in record.frames
            for d in f["detections"]
            if d[4] >= kept
        ]
    if run.sequences is not None and record.item in run.sequences.seq_ids:
        entry["seq_id"] = run.sequences.seq_ids[record.item]
    if "decided_by" in record.outputs:  # fast mode: "detector" where its screen found no animal
        entry["decided_by"] = record.outputs["decided_by"]
    if record.notes:
        entry["notes"] = list(record.notes)
    return entry


def _file_name(item: str, run: RunDescription) -> str:
    """A file as the entries name it: relative to Timelapse's root folder where there is one."""
    return relative_path(item, run.root, run.base) if run.root else item


def _sequences(records: Sequence[Record], run: RunDescription) -> dict[str, Any]:
    """The bursts: each sequence's files and the classes of the sequence as one event."""
    from kifaru.outputs.sequence_csv import sequence_scores

    scores = sequence_scores(records, run)
    grouping = run.sequences
    return {
        "grouped": grouping.rule,
        "aggregation": run.aggregation,
        "untimed_files": [_file_name(item, run) for item in grouping.untimed],
        "sequences": [
            {
                "seq_id": seq_id,
                "files": [_file_name(item, run) for item in items],
                "classifications": _classifications(None if scores[seq_id] is None else list(scores[seq_id]), CLASSIFICATIONS_PER_DETECTION),
            }
            for seq_id, items in sorted(grouping.sequences().items())
        ],
    }


def _classifications(probabilities: Optional[Sequence[float]], count: int = CLASSIFICATIONS_PER_DETECTION) -> Optional[list[list]]:
    if probabilities is None:
        return None
    ranked = sorted(range(len(probabilities)), key=lambda i: (-probabilities[i], i))[:count]
    return [[str(i), round(float(probabilities[i]), 4)] for i in ranked]


def _detection(detection: Sequence[float], frame_number: Optional[int], classifications: Optional[list], category: str = ANIMAL_CATEGORY) -> dict:
    x1, y1, x2, y2, conf = (float(v) for v in detection)
    x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in (x1, y1, x2, y2))
    out: dict[str, Any] = {
        "category": category,
        "conf": round(conf, 3),
        "bbox": [round(x1, 4), round(y1, 4), round(x2 - x1, 4), round(y2 - y1, 4)],
    }
    if frame_number is not None:
        out["frame_number"] = int(frame_number)
    if classifications is not None:
        out["classifications"] = classifications
    return out


def _info(run: RunDescription, detector: Any, kept: float) -> dict[str, Any]:
    from kifaru.models.registry import MEGADETECTOR_LITE

    now = time.strftime("%Y-%m-%d %H:%M:%S")
    custom: dict[str, Any] = {"produced_by": f"kifaru {run.command}"}
    if run.loader_config is not None:
        custom["frame_sampling"] = {"fps": run.loader_config.fps}
    if run.root is not None:
        custom["paths_relative_to"] = str(run.root)
    info: dict[str, Any] = {"format_version": "1.6"}
    if run.detector is not None:  # photos (image predict)
        info["detector"] = run.detector["name"]
        info["detection_completion_time"] = now
        info["detector_metadata"] = {
            "typical_detection_threshold": run.detector["detections_threshold"],
            "conservative_detection_threshold": run.detector["detections_threshold"],
        }
        custom["detector_settings"] = dict(run.detector)
    elif detector is not None:
        typical = run.animal_threshold()
        info["detector"] = MEGADETECTOR_LITE.weights_filename
        info["detection_completion_time"] = now
        info["detector_metadata"] = {
            "megadetector_version": "MegadetectorLite (zamba 2.7.2 YOLOX-tiny, 2022-05-28)",
            "typical_detection_threshold": typical,
            "conservative_detection_threshold": min(typical, detector.confidence),
        }
        custom["detector_settings"] = {
            "confidence": detector.confidence,
            "nms_threshold": detector.nms_threshold,
            "image_width": detector.image_width,
            "image_height": detector.image_height,
            "boxes_kept_down_to": kept,
        }
        custom["weights_credit"] = MEGADETECTOR_LITE.credit
    elif run.loader_config is not None:
        custom["detector_settings"] = "no detector ran: frames were chosen without one, and entries have no boxes"
    else:
        custom["detector_settings"] = "no detector ran: each photo was classified whole, and entries have no boxes"
    if run.species:
        info["classifier"] = run.model or "classifier"
        info["classification_completion_time"] = now
        if run.loader_config is not None:
            custom["classifications"] = (
                f"each detection carries its clip's {CLASSIFICATIONS_PER_DETECTION} most likely species (the classifier "
                "sees the whole clip, not the box); the predictions CSV has every species for every clip"
            )
        else:
            custom["classifications"] = (
                f"each animal detection at or above the detection threshold carries the {CLASSIFICATIONS_PER_CROP} most "
                "likely species of its crop; a photo classified whole (crop_images false) has no box to carry them: "
                "the predictions CSV has them"
            )
    if run.partial is not None:
        done, total = run.partial
        custom["partial"] = {
            "files_done": done,
            "files_in_run": total,
            "note": "the run was interrupted: the same command continues it and writes the whole file",
        }
    info["custom_metadata"] = custom
    return info
