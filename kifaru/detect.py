"""``kifaru detect``: MegadetectorLite over many files, with outputs the camera-trap ecosystem reads.

Each file ends up with a record: its detections frame by frame, or a failure with the reason, and
notes on what was odd about it (a clip cut short: the frames that could be read are used).
Records are appended to a progress file as files finish, and the progress file stays after the run.
The rule for an output folder that holds an earlier run (``kifaru.progress.records_to_resume``, the
same as predict's): with the same settings, the run continues (files done are not done again; a
finished run's outputs are written again, e.g. with another ``threshold``); with other settings,
or when the folder holds outputs but no progress file (whose settings cannot be known), it is
refused with a ConfigError saying what differs, unless ``overwrite`` starts over.

When every file has a record, the outputs are written (each replaced atomically); a run that is
interrupted (Ctrl-C, SIGTERM) writes them for the files finished, marked as partial, and raises
:class:`kifaru.exceptions.Interrupted`:

- ``detections.json``: MegaDetector batch-output format 1.6 (Timelapse, MegaDetector's tools);
  videos carry ``frame_rate``, ``frames_processed`` and a ``frame_number`` per detection. The
  format has no field for notes: a file's are in an extra ``notes`` list in its entry (readers
  ignore keys they do not know). A partial run says so in ``info.custom_metadata.partial``.
- ``detection_summary.csv``: one row per file: animal or blank at the threshold, the highest
  confidence, frames with an animal, first and last time one is seen, and its notes.
"""

from __future__ import annotations

import csv
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from kifaru.config.video import VideoLoaderConfig
from kifaru.exceptions import ConfigError, Interrupted
from kifaru.failures import read_failure
from kifaru.files import write_text_atomically
from kifaru.models.registry import MEGADETECTOR_LITE
from kifaru.progress import ProgressLog, file_fingerprint, records_to_resume

DETECTIONS_JSON = "detections.json"
SUMMARY_CSV = "detection_summary.csv"
PROGRESS_FILE = ".kifaru-detect-progress.jsonl"
ANIMAL_CATEGORY = "1"
# MegaDetector's own map (only "1" is ever used here): Timelapse refuses to merge recognitions whose
# category maps differ, so a file from kifaru and one from MegaDetector/AddaxAI must share it.
DETECTION_CATEGORIES = {ANIMAL_CATEGORY: "animal", "2": "person", "3": "vehicle"}
SUMMARY_COLUMNS = (
    "filepath",
    "media",
    "result",
    "max_confidence",
    "frames_processed",
    "frames_with_animal",
    "first_animal_s",
    "last_animal_s",
    "failure",
    "note",
)

# kifaru detect samples frames at 1 fps by default: a camera-trap clip's animal stays for seconds.
DEFAULT_DETECT_FPS = 1.0
DEFAULT_DETECT_THRESHOLD = 0.25  # MegadetectorLite's default confidence: a box it keeps counts


def default_detect_config(fps: float = DEFAULT_DETECT_FPS, **detector: Any) -> VideoLoaderConfig:
    """Frames at ``fps``, the whole frame, MegadetectorLite with zamba's defaults unless given."""
    return VideoLoaderConfig(fps=fps, ensure_total_frames=False, megadetector_lite_config=detector)


@dataclass
class FileRecord:
    """One file's outcome, as stored in the progress file (plain JSON types only)."""

    filepath: str  # as given (absolute or relative to the working folder)
    media: str  # "video" or "image"
    frame_rate: Optional[float] = None
    frames: list[dict] = field(default_factory=list)  # {"frame_number", "time", "detections": [[x1, y1, x2, y2, conf]]}
    failure: Optional[str] = None
    fingerprint: Optional[list] = None  # [size, mtime_ns] when it was processed
    notes: list[str] = field(default_factory=list)  # e.g. a clip cut short: only its first frames could be read

    def animal_frames(self, threshold: float) -> list[dict]:
        return [f for f in self.frames if any(d[4] >= threshold for d in f["detections"])]

    def max_confidence(self) -> float:
        return max((d[4] for f in self.frames for d in f["detections"]), default=0.0)


@dataclass
class DetectReport:
    records: list[FileRecord]
    skipped: int  # files already done in an earlier, interrupted run
    outputs: dict[str, Path]

    @property
    def failed(self) -> list[FileRecord]:
        return [r for r in self.records if r.failure]


ProgressCallback = Callable[[FileRecord, int, int], None]  # (record, files done, files in total)


def detect_files(
    filepaths: Sequence[Path],
    output_dir: Path,
    *,
    video_loader_config: Optional[VideoLoaderConfig] = None,
    threshold: float = DEFAULT_DETECT_THRESHOLD,
    relative_to: Optional[Path] = None,
    overwrite: bool = False,
    detector: Any = None,
    progress: Optional[ProgressCallback] = None,
) -> DetectReport:
    """Run MegadetectorLite on every file and write the outputs to ``output_dir``.

    ``relative_to``: the folder the output paths are written relative to (Timelapse's root
    folder), else paths are written as given. ``overwrite`` False: an earlier run in
    ``output_dir`` with the same settings is continued (its results for unchanged files are
    reused), one with other settings is refused (ConfigError); True: start over.
    """
    from kifaru.video.loader import FrameLoader

    config = video_loader_config or default_detect_config()
    if config.megadetector_lite_config is None:
        raise ConfigError("video_loader_config.megadetector_lite_config is needed to detect (give {} for the defaults)")
    if not 0 <= threshold <= 1:
        raise ConfigError(f"threshold {threshold} is not between 0 and 1")
    output_dir = Path(output_dir)
    done = earlier_records(output_dir, config, overwrite=overwrite)
    output_dir.mkdir(parents=True, exist_ok=True)
    progress_path = output_dir / PROGRESS_FILE
    paths = [Path(p) for p in filepaths]
    loader = FrameLoader(config, detector=detector)
    records: list[FileRecord] = []
    skipped = 0
    write = dict(threshold=threshold, relative_to=relative_to, config=config)
    try:
        with ProgressLog(progress_path, _progress_header(config)) as log:
            for path in paths:
                previous = done.get(str(path))
                if previous is not None and previous.fingerprint == file_fingerprint(path):
                    record, skipped = previous, skipped + 1
                else:
                    record = _detect_one(loader, path)
                    log.append(record.__dict__)
                records.append(record)
                if progress is not None:
                    progress(record, len(records), len(paths))
    except KeyboardInterrupt as interrupt:
        # What is finished gets its outputs now (marked partial), in input order: the files done
        # so far, then those an earlier run did among the rest. The same command continues.
        finished = records + [
            done[str(p)] for p in paths[len(records):]
            if str(p) in done and done[str(p)].fingerprint == file_fingerprint(p)
        ]
        outputs = write_outputs(finished, output_dir, partial=(len(finished), len(paths)), **write)
        raise Interrupted.after(interrupt, len(finished), len(paths), outputs) from None
    outputs = write_outputs(records, output_dir, **write)
    return DetectReport(records, skipped, outputs)


def earlier_records(output_dir: Path, config: VideoLoaderConfig, *, overwrite: bool = False) -> dict[str, FileRecord]:
    """The records of an earlier run in ``output_dir`` that a run with ``config`` continues from,
    by filepath; ConfigError if the folder holds a run with other settings (see the module's rule).
    ``overwrite``: start over (the progress file is deleted)."""
    output_dir = Path(output_dir)
    items = records_to_resume(
        output_dir / PROGRESS_FILE,
        _progress_header(config),
        overwrite=overwrite,
        outputs=[output_dir / DETECTIONS_JSON, output_dir / SUMMARY_CSV],
    )
    return {item["filepath"]: FileRecord(**item) for item in items}


def _detect_one(loader: Any, path: Path) -> FileRecord:
    fingerprint = file_fingerprint(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # partial decodes are in found.warnings
            found = loader.detect(path)
    except Exception as error:  # one file must never stop a weekend's run: record it, go on
        failure = read_failure(error).message(path)
    else:
        failure = None
    if failure is not None:
        media = "image" if _looks_like_image(path) else "video"
        return FileRecord(str(path), media, failure=failure, fingerprint=fingerprint)
    frames = [
        {
            "frame_number": number,
            "time": round(seconds, 6),
            "detections": [[*(round(float(v), 6) for v in box), round(float(score), 6)] for box, score in zip(d.boxes, d.scores)],
        }
        for number, seconds, d in zip(found.frame_numbers, found.times, found.detections)
    ]
    return FileRecord(
        str(path),
        "image" if found.is_image else "video",
        frame_rate=None if found.is_image else found.frame_rate,
        frames=frames,
        fingerprint=fingerprint,
        notes=[_without_path(note, path) for note in found.warnings],
    )


def _without_path(note: str, path: Path) -> str:
    """A loader note without the path it starts with (the record says which file it is)."""
    prefix = f"{path}: "
    return note[len(prefix):] if note.startswith(prefix) else note


def _looks_like_image(path: Path) -> bool:
    from kifaru.video.media import is_image

    return is_image(path)


# -- progress file --------------------------------------------------------------------------


def _progress_header(config: VideoLoaderConfig) -> dict:
    """What the records depend on: a progress file written with other settings is not reused."""
    return {
        "kifaru_detect_progress": 1,
        "video_loader_config": config.model_dump(mode="json", exclude={"cache_dir", "cleanup_cache"}),
        "weights": MEGADETECTOR_LITE.weights_sha256,
    }


# -- outputs ----------------------------------------------------------------------------------


def write_outputs(
    records: Iterable[FileRecord],
    output_dir: Path,
    *,
    threshold: float,
    relative_to: Optional[Path],
    config: VideoLoaderConfig,
    partial: Optional[tuple[int, int]] = None,
) -> dict[str, Path]:
    """Both outputs; ``partial``: (files done, files in all) of an interrupted run."""
    records = list(records)
    json_path = output_dir / DETECTIONS_JSON
    csv_path = output_dir / SUMMARY_CSV
    data = megadetector_json(records, threshold=threshold, relative_to=relative_to, config=config, partial=partial)
    write_text_atomically(json_path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    write_text_atomically(csv_path, summary_csv(records, threshold=threshold))
    return {"detections": json_path, "summary": csv_path}


def _output_path(filepath: str, relative_to: Optional[Path]) -> str:
    path = Path(filepath)
    if relative_to is not None:
        try:
            path = path.resolve().relative_to(Path(relative_to).resolve())
        except ValueError:
            pass
    return path.as_posix()


def megadetector_json(
    records: Sequence[FileRecord],
    *,
    threshold: float,
    relative_to: Optional[Path],
    config: VideoLoaderConfig,
    partial: Optional[tuple[int, int]] = None,
) -> dict:
    """MegaDetector batch output, format 1.6: one entry per image or video."""
    detector = config.megadetector_lite_config
    images = []
    for record in records:
        entry: dict[str, Any] = {"file": _output_path(record.filepath, relative_to)}
        if record.media == "video":
            entry["frame_rate"] = -1.0 if record.failure else float(record.frame_rate or -1.0)
            entry["frames_processed"] = [] if record.failure else [f["frame_number"] for f in record.frames]
        if record.failure:
            entry["failure"] = record.failure
            entry["detections"] = None
        else:
            entry["detections"] = [
                _md_detection(d, None if record.media == "image" else f["frame_number"])
                for f in record.frames
                for d in f["detections"]
            ]
        if record.notes:
            entry["notes"] = list(record.notes)
        images.append(entry)
    custom: dict[str, Any] = {}
    if partial is not None:
        done, total = partial
        custom["partial"] = {
            "files_done": done,
            "files_in_run": total,
            "note": "the run was interrupted: the same command continues it and writes the whole file",
        }
    return {
        "info": {
            "format_version": "1.6",
            "detector": MEGADETECTOR_LITE.weights_filename,
            "detection_completion_time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "detector_metadata": {
                "megadetector_version": "MegadetectorLite (zamba 2.7.2 YOLOX-tiny, 2022-05-28)",
                "typical_detection_threshold": threshold,
                "conservative_detection_threshold": detector.confidence,
            },
            "custom_metadata": {
                "produced_by": "kifaru detect",
                "frame_sampling": {"fps": config.fps},
                "detector_settings": {
                    "confidence": detector.confidence,
                    "nms_threshold": detector.nms_threshold,
                    "image_width": detector.image_width,
                    "image_height": detector.image_height,
                },
                "weights_credit": MEGADETECTOR_LITE.credit,
                **custom,
            },
        },
        "detection_categories": dict(DETECTION_CATEGORIES),
        "images": images,
    }


def _md_detection(detection: Sequence[float], frame_number: Optional[int]) -> dict:
    x1, y1, x2, y2, conf = (float(v) for v in detection)
    x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in (x1, y1, x2, y2))
    out: dict[str, Any] = {
        "category": ANIMAL_CATEGORY,
        "conf": round(conf, 3),
        "bbox": [round(x1, 4), round(y1, 4), round(x2 - x1, 4), round(y2 - y1, 4)],
    }
    if frame_number is not None:
        out["frame_number"] = int(frame_number)
    return out


def summary_row(record: FileRecord, threshold: float) -> dict[str, Any]:
    note = "; ".join(record.notes)
    if record.failure:
        return {"filepath": record.filepath, "media": record.media, "result": "failed", "failure": record.failure, "note": note}
    animal = record.animal_frames(threshold)
    times = [f["time"] for f in animal]
    video = record.media == "video"
    return {
        "filepath": record.filepath,
        "media": record.media,
        "result": "animal" if animal else "blank",
        "max_confidence": round(record.max_confidence(), 4),
        "frames_processed": len(record.frames),
        "frames_with_animal": len(animal),
        "first_animal_s": round(min(times), 3) if times and video else "",
        "last_animal_s": round(max(times), 3) if times and video else "",
        "failure": "",
        "note": note,
    }


def summary_csv(records: Sequence[FileRecord], *, threshold: float) -> str:
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=SUMMARY_COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    for record in records:
        writer.writerow(summary_row(record, threshold))
    return out.getvalue()

