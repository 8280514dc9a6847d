"""A finished run's results folder, made without running a model: real media files (a clip with
a drawn animal, photos with EXIF times, a damaged file) and the records a run of them would
write, in ``kifaru_results.jsonl`` and ``kifaru_image_results.jsonl`` (videos and photos, as
``kifaru predict`` with ``photos: image`` leaves them). What the report and the export make of
it is then known exactly.

The folder (``data/``)::

    cam1/deer.mp4     4 s at 2 fps, recorded 2024-05-01T06:30:00Z; an animal box (0.2, 0.3, 0.5, 0.7)
                      in frames 2..5 (1.0 s to 2.5 s); european_roe_deer 0.9
    cam1/empty.mp4    no box; blank 0.97
    cam1/broken.mp4   not a video: failed at decode
    cam1/gone.mp4     never found: failed at file
    cam2/p1.jpg, p2.jpg  a burst (2024-05-02 10:00:00 and :02, camera local time), one crop each: wild_boar
                      (0.8; and 0.48 in p2: to review, under 0.5)
    cam2/p3.jpg       10:30:00, no box: blank
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from kifaru.images.sequences import Grouping
from kifaru.outputs import RunDescription, get_writer
from kifaru.outputs.results_file import IMAGE_RESULTS_FILE, RESULTS_FILE
from kifaru.runs.journal import file_fingerprint
from kifaru.runs.records import MEDIA_IMAGE, STAGE_DECODE, STAGE_FILE, Record
from tests.images.photos import save_taken
from tests.media import make_clip

SPECIES = ("blank", "european_roe_deer", "wild_boar")
DEER_BOX = (0.2, 0.3, 0.5, 0.7)
DEER_FRAMES = range(2, 6)  # at 2 fps: 1.0 s to 2.5 s
DEER_RECORDED = "2024-05-01T06:30:00Z"
FPS = 2
SIZE = (180, 320)  # height, width
PHOTO_SIZE = (320, 240)  # width, height
BURST_TIMES = (datetime(2024, 5, 2, 10, 0, 0), datetime(2024, 5, 2, 10, 0, 2), datetime(2024, 5, 2, 10, 30, 0))
BOAR_BOX_PIXELS = [24, 48, 120, 168]  # x1, y1, x2, y2 in the 320 x 240 photo


@dataclass
class Results:
    folder: Path  # the results folder
    data: Path  # the media's root folder

    def path(self, name: str) -> Path:
        return self.data / name


def deer_frame(index: int) -> np.ndarray:
    """Grey-green ground; in the animal's frames a brown block filling DEER_BOX."""
    height, width = SIZE
    frame = np.full((height, width, 3), (96, 120, 80), np.uint8)
    if index in DEER_FRAMES:
        x1, y1, x2, y2 = DEER_BOX
        frame[round(y1 * height) : round(y2 * height), round(x1 * width) : round(x2 * width)] = (140, 90, 40)
    return frame


def _video_frames(count: int, animal: bool) -> list[dict]:
    return [
        {
            "frame_number": i,
            "time": i / FPS,
            "detections": [[*DEER_BOX, 0.9]] if animal and i in DEER_FRAMES else [],
        }
        for i in range(count)
    ]


def make_results(tmp_path: Path) -> Results:
    data, out = tmp_path / "data", tmp_path / "results"
    out.mkdir(parents=True)
    deer = make_clip(data / "cam1" / "deer.mp4", fps=FPS, size=SIZE, frames=[deer_frame(i) for i in range(8)], metadata={"creation_time": DEER_RECORDED})
    empty = make_clip(data / "cam1" / "empty.mp4", fps=FPS, size=SIZE, frames=[deer_frame(0)] * 8)
    broken = data / "cam1" / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    videos = [
        Record(str(deer), fingerprint=file_fingerprint(deer), frame_rate=FPS, frames=_video_frames(8, True), frames_used=list(range(8)), outputs={"probabilities": [0.05, 0.9, 0.05]}),
        Record(str(empty), fingerprint=file_fingerprint(empty), frame_rate=FPS, frames=_video_frames(8, False), frames_used=list(range(8)), outputs={"probabilities": [0.97, 0.02, 0.01]}),
        Record.failure(str(broken), STAGE_DECODE, "cannot be opened as a video", fingerprint=file_fingerprint(broken)),
        Record.failure(str(data / "cam1" / "gone.mp4"), STAGE_FILE, "file not found"),
    ]
    video_run = RunDescription("predict", species=SPECIES, model="deer.ckpt", model_sha256="ab" * 32, threshold=0.25, root=data, base=tmp_path)
    _write(out / RESULTS_FILE, videos, video_run)

    photos = []
    for number, taken in enumerate(BURST_TIMES, start=1):
        path = save_taken(data / "cam2" / f"p{number}.jpg", Image.new("RGB", PHOTO_SIZE, (90, 110, 70)), taken)
        record = Record(str(path), media=MEDIA_IMAGE, fingerprint=file_fingerprint(path))
        record.outputs.update(image_size=list(PHOTO_SIZE), taken=taken.isoformat())
        if number < 3:
            width, height = PHOTO_SIZE
            x1, y1, x2, y2 = BOAR_BOX_PIXELS
            record.frames = [{"frame_number": 0, "time": 0.0, "detections": [[x1 / width, y1 / height, x2 / width, y2 / height, 0.8]], "categories": ["1"]}]
            probabilities = [0.1, 0.1, 0.8] if number == 1 else [0.1, 0.42, 0.48]
            record.outputs["crops"] = [{"detection": 0, "box": BOAR_BOX_PIXELS, "conf": 0.8, "category": "1", "probabilities": probabilities}]
        else:
            record.frames = [{"frame_number": 0, "time": 0.0, "detections": [], "categories": []}]
            record.outputs["crops"] = []
        record.frames_used = [0] if number < 3 else []
        photos.append(record)
    burst = Grouping({r.item: ("cam2/0001" if i < 2 else "cam2/0002") for i, r in enumerate(photos)}, rule="by time, 60 s gaps")
    photo_run = RunDescription(
        "image predict", species=SPECIES, model="boar.ckpt", model_sha256="cd" * 32, threshold=0.2, root=data, base=tmp_path,
        detector={"name": "MDV6-yolov10-e", "detections_threshold": 0.2, "boxes_kept_down_to": 0.2}, sequences=burst,
    )  # fmt: skip
    _write(out / IMAGE_RESULTS_FILE, photos, photo_run)
    return Results(out, data)


def _write(path: Path, records: list[Record], run: RunDescription) -> None:
    path.write_text(get_writer("results_jsonl").render(records, run), encoding="utf-8")
