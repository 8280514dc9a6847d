"""When each file was recorded, and how sure that is: what Camtrap DP's ``timestamp`` needs.

In order: a time the user gives for the file (a CSV column), the time the camera wrote into the
file (a video container's ``creation_time``, a photo's EXIF ``DateTimeOriginal``), and last the
file's modification time as it was when kifaru read it (cameras write it when they record, but
copying can change it). Which one a file got is said in its ``mediaComments``, and the export
warns of every file that got the last one. EXIF times carry no time zone: without
``utc_offset`` they are written as UTC and their deployment is marked ``timestampIssues``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

from kifaru.exceptions import ConfigError
from kifaru.runs.records import MEDIA_VIDEO, Record

SOURCE_GIVEN = "given"
SOURCE_FILE = "recorded in the file"
SOURCE_MODIFIED = "file modification time"
# Cameras whose clock was never set write the container's zero (1904 or 1970): not a time.
EARLIEST_PLAUSIBLE = datetime(1990, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class MediaTime:
    when: datetime  # aware
    source: str  # SOURCE_*
    zone_known: bool = True

    def comment(self) -> Optional[str]:
        """What the file's mediaComments say of its time (None: the camera's own, with its zone)."""
        if self.source == SOURCE_MODIFIED:
            return "timestamp: the file's modification time (no capture time in the file; check it)"
        if not self.zone_known:
            return "timestamp: the camera's local time, time zone unknown (written as UTC)"
        return None


def camtrap_time(when: datetime) -> str:
    """ISO 8601 with a zone designator and whole seconds, as Camtrap DP's datetime fields require."""
    text = when.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def floor_seconds(when: datetime) -> datetime:
    return when.replace(microsecond=0)


def ceil_seconds(when: datetime) -> datetime:
    return when.replace(microsecond=0) + timedelta(seconds=1) if when.microsecond else when


def after(start: datetime, seconds: float, *, up: bool) -> datetime:
    """``start`` plus ``seconds``, rounded down (an event's start) or up (its end) to whole seconds."""
    moved = start + timedelta(seconds=float(seconds))
    return ceil_seconds(moved) if up else floor_seconds(moved)


def parse_offset(text: str) -> timezone:
    """``+02:00``, ``-0530``, ``Z`` or ``UTC`` as a time zone; ConfigError otherwise."""
    value = text.strip()
    if value.upper() in ("Z", "UTC"):
        return timezone.utc
    try:
        parsed = datetime.strptime(value.replace(":", ""), "%z")
    except ValueError:
        raise ConfigError(f"--utc-offset {text}: give the cameras' offset from UTC as +HH:MM or -HH:MM (e.g. +02:00), or Z") from None
    return parsed.tzinfo  # type: ignore[return-value]


def read_given_times(path: Path, names: dict[str, str]) -> dict[str, MediaTime]:
    """The times of a CSV with columns ``filepath`` and ``timestamp`` (ISO 8601 with a zone),
    keyed by the run's item names (``names``: each file's path as the CSV may write it -> its item)."""
    path = Path(path)
    given: dict[str, MediaTime] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"filepath", "timestamp"} - set(reader.fieldnames or ())
        if missing:
            raise ConfigError(f"--timestamps {path}: needs the columns filepath and timestamp (missing: {', '.join(sorted(missing))})")
        for line, row in enumerate(reader, start=2):
            item = names.get(row["filepath"].strip())
            if item is None:
                raise ConfigError(f"--timestamps {path}, line {line}: {row['filepath']} is not a file of these results")
            when = _parse_time(row["timestamp"])
            if when is None or when.tzinfo is None:
                raise ConfigError(
                    f"--timestamps {path}, line {line}: {row['timestamp']!r} is not an ISO 8601 time with a time zone "
                    f"(e.g. 2024-05-01T06:30:00+02:00 or 2024-05-01T04:30:00Z)"
                )
            given[item] = MediaTime(when, SOURCE_GIVEN)
    return given


def media_time(record: Record, path: Path, utc_offset: Optional[timezone]) -> Optional[MediaTime]:
    """A file's time (see the module), or None when nothing says when it was recorded (a file
    that was never found)."""
    if record.media == MEDIA_VIDEO:
        recorded = video_creation_time(path)
        if recorded is not None:
            return MediaTime(recorded, SOURCE_FILE)
    else:
        taken = record.outputs.get("taken")
        if taken:
            when = datetime.fromisoformat(taken)
            if when.tzinfo is not None:
                return MediaTime(when, SOURCE_FILE)
            if utc_offset is not None:
                return MediaTime(when.replace(tzinfo=utc_offset), SOURCE_FILE)
            return MediaTime(when.replace(tzinfo=timezone.utc), SOURCE_FILE, zone_known=False)
    if record.fingerprint:
        return MediaTime(datetime.fromtimestamp(record.fingerprint[1] / 1e9, timezone.utc), SOURCE_MODIFIED)
    try:
        return MediaTime(datetime.fromtimestamp(path.stat().st_mtime, timezone.utc), SOURCE_MODIFIED)
    except OSError:
        return None


def video_creation_time(path: Path) -> Optional[datetime]:
    """The ``creation_time`` a video's container (or its video stream) holds, or None."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            values = [container.metadata.get("creation_time")]
            values += [stream.metadata.get("creation_time") for stream in container.streams.video]
    except (av.error.FFmpegError, OSError):
        return None
    for value in values:
        when = _parse_time(value) if value else None
        if when is not None:
            when = when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)  # MP4 times are UTC
            if when >= EARLIEST_PLAUSIBLE:
                return when
    return None


def _parse_time(text: Optional[str]) -> Optional[datetime]:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        return None


def duration_of(record: Record) -> float:
    """How long a clip is known to last: its last scored or used frame's time (0 for a photo)."""
    times = [f.get("time", 0.0) for f in record.frames]
    if not times and record.frames_used and record.frame_rate:
        times = [n / record.frame_rate for n in record.frames_used]
    return float(max(times, default=0.0))
