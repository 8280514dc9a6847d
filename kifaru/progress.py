"""Progress files: one JSON line per finished file, so an interrupted run can pick up where it stopped.

The first line is a header saying what the records depend on (settings, weights). A later run
reuses the records only if its header is the same; every record is flushed and fsynced as it is
written, so a crash (kill -9, power loss) loses at most the file being worked on, and a line torn
by the crash is ignored when reading.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional


class ProgressLog:
    """Appends records to a progress file (a context manager)."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = Path(path)
        self.header = header

    def __enter__(self) -> "ProgressLog":
        new = not self.path.exists() or self.path.stat().st_size == 0
        torn = not new and _last_byte(self.path) != b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a", encoding="utf-8")
        if new:
            self._write(self.header)
        elif torn:
            # End the line a crash cut short, or the next record would be glued onto it and lost.
            self.handle.write("\n")
        return self

    def append(self, record: dict[str, Any]) -> None:
        self._write(record)

    def _write(self, item: dict[str, Any]) -> None:
        self.handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def __exit__(self, *exc: Any) -> None:
        self.handle.close()


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1)


def read_header(path: Path) -> Optional[dict[str, Any]]:
    """The header of a progress file, or None when there is none (or it is unreadable)."""
    try:
        with open(path, encoding="utf-8") as handle:
            header = json.loads(handle.readline())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return header if isinstance(header, dict) else None


def read_progress(path: Path, header: dict[str, Any]) -> Optional[list[dict[str, Any]]]:
    """The records of a progress file written with this ``header``, in the order written.

    None when there is no such file. A file written with another header (other settings, or
    damaged) is deleted, and an empty list returned: its records do not apply.
    """
    path = Path(path)
    if not path.exists():
        return None
    if read_header(path) != header:
        path.unlink()
        return []
    records = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        handle.readline()
        for line in handle:
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue  # the line being written when the run stopped
            if isinstance(item, dict):
                records.append(item)
    return records


def file_fingerprint(path: Path) -> Optional[list]:
    """[size, mtime_ns] of a file (None if it cannot be read): a record made for a file that has
    changed since is not reused."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def format_duration(seconds: float) -> str:
    """A time left for progress lines: "40 s", "12 min", "3.5 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
