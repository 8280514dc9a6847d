"""One record per input file, the same for every command: what was found, or why nothing was.

A record is plain data (JSON types only): it is what the journal stores, what writers read, and
what a worker process sends back. Failures are records too, with the stage that failed and the
reason, so that a bad file is described the same way by every command and never stops a run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional, Sequence

MEDIA_VIDEO = "video"
MEDIA_IMAGE = "image"

STATUS_DONE = "done"
STATUS_FAILED = "failed"

# Failure stages, as written in failure records.
STAGE_FILE = "file"  # the path is missing, a folder, or not a video
STAGE_DECODE = "decode"  # the file could not be opened or decoded
STAGE_FRAMES = "frames"  # decoded, but the frames the model needs were not there
STAGE_WORKER = "worker"  # processing it killed the worker process
STAGE_MODEL = "model"  # the model could not run on the clip's frames
STAGE_DETECT = "detect"  # the detector found nothing to use (image training: nothing to train on)


@dataclass
class Record:
    """One input file's outcome.

    ``frames``: every frame the detector scored, ``{"frame_number", "time", "detections":
    [[x1, y1, x2, y2, score], ...]}`` with boxes relative to the frame (down to the detector's
    kept-box threshold); ``frames_used``: the source frame numbers of the frames the model saw;
    ``outputs``: the model's outputs by name (``probabilities`` in species order).
    """

    item: str  # the file as the outputs name it (as given, or zamba's absolute path)
    media: str = MEDIA_VIDEO
    fingerprint: Optional[list] = None  # [size, mtime_ns] when it was read
    status: str = STATUS_DONE
    stage: Optional[str] = None
    reason: Optional[str] = None  # without the path
    frame_rate: Optional[float] = None
    frames: list[dict] = field(default_factory=list)
    frames_used: list[int] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. a clip cut short: only its first frames could be read

    @classmethod
    def failure(cls, item: str, stage: str, reason: str, **known: Any) -> "Record":
        return cls(item, status=STATUS_FAILED, stage=stage, reason=reason, **known)

    @property
    def failed(self) -> bool:
        return self.status == STATUS_FAILED

    @property
    def filepath(self) -> str:
        """The name zamba's outputs give the file's column."""
        return self.item

    @property
    def probabilities(self) -> Optional[list[float]]:
        return self.outputs.get("probabilities")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Record":
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})

    def detections_above(self, threshold: float) -> list[tuple[dict, list]]:
        """(frame, detection) for every box scoring at least ``threshold``."""
        return [(frame, d) for frame in self.frames for d in frame["detections"] if d[4] >= threshold]

    def animal_frames(self, threshold: float) -> list[dict]:
        return [f for f in self.frames if any(d[4] >= threshold for d in f["detections"])]

    def max_confidence(self) -> float:
        return max((d[4] for f in self.frames for d in f["detections"]), default=0.0)


def frame_entries(scored: Sequence[tuple[int, float, Any]]) -> list[dict]:
    """Record frames from a loader's scored frames ``(frame number, time, FrameDetections)``."""
    return [
        {
            "frame_number": int(number),
            "time": round(float(seconds), 6),
            "detections": [
                [*(round(float(v), 6) for v in box), round(float(score), 6)] for box, score in zip(found.boxes, found.scores)
            ],
        }
        for number, seconds, found in scored
    ]


def failure_of(error: Exception) -> tuple[str, str]:
    """(stage, reason) of an exception raised while reading one file."""
    from kifaru.exceptions import KifaruError, MediaNotFoundError

    if isinstance(error, MediaNotFoundError):
        return STAGE_FILE, error.reason
    if isinstance(error, KifaruError):
        return STAGE_DECODE, getattr(error, "reason", str(error))
    # A decoder's own exception: recorded with its type, since nothing more is known.
    return STAGE_DECODE, f"unexpected {type(error).__name__}: {error}"


def without_path(note: str, path: Any) -> str:
    """A loader note without the path it starts with (the record says which file it is)."""
    prefix = f"{path}: "
    return note[len(prefix):] if note.startswith(prefix) else note
