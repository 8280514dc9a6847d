"""The journal: one JSON line per finished item, so that a stopped run picks up where it stopped.

The first line is a header saying what the records depend on (settings, weights, checkpoint). Every
record is flushed and fsynced as it is written, so a crash (kill -9, power loss) loses at most the
items being worked on, and a line torn by the crash is ignored when reading.

One rule for a folder an earlier run wrote into, the same for every command
(:func:`records_to_resume`): a run with the same settings continues where the earlier one stopped
(items whose file is unchanged are not done again, failures included: a file that killed its
worker is not retried forever); a run with other settings is refused, naming what differs;
``overwrite`` starts over.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence

from kifaru.exceptions import ConfigError
from kifaru.runs.records import Record


class Journal:
    """A run's journal in its output folder: the records of an earlier run to continue from, and
    the records of this one appended as they finish (a context manager).

    ``outputs``: the files a finished run leaves (without a journal, they mean a run whose settings
    are unknown: refused). ``keep``: the journal stays when the run finishes (detect writes a
    finished run's outputs again from it); otherwise it is removed by :meth:`finished`, and a
    finished run's outputs are refused as zamba refuses them.
    """

    def __init__(
        self,
        path: Path,
        header: dict[str, Any],
        *,
        outputs: Sequence[Path] = (),
        overwrite_hint: str = "--overwrite",
        keep: bool = False,
    ) -> None:
        self.path = Path(path)
        self.header = header
        self.outputs = list(outputs)
        self.overwrite_hint = overwrite_hint
        self.keep = keep
        self._log: Optional[ProgressLog] = None

    def earlier(self, overwrite: bool = False) -> dict[str, Record]:
        """The records this run continues from, by item (the rule of :func:`records_to_resume`)."""
        items = records_to_resume(
            self.path, self.header, overwrite=overwrite, outputs=self.outputs, overwrite_hint=self.overwrite_hint
        )
        records = {}
        for item in items:
            record = Record.from_json(item)
            records[record.item] = record
        return records

    def __enter__(self) -> "Journal":
        self._log = ProgressLog(self.path, self.header).__enter__()
        return self

    def append(self, record: Record) -> None:
        assert self._log is not None, "append inside 'with journal:'"
        self._log.append(record.to_json())

    def __exit__(self, *exc: Any) -> None:
        if self._log is not None:
            self._log.__exit__(*exc)
            self._log = None

    def finished(self) -> None:
        """The run wrote its outputs: remove the journal unless it is kept."""
        if not self.keep:
            self.path.unlink(missing_ok=True)


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


def records_to_resume(
    path: Path,
    header: dict[str, Any],
    *,
    overwrite: bool = False,
    outputs: Sequence[Path] = (),
    overwrite_hint: str = "--overwrite",
) -> list[dict[str, Any]]:
    """The records of an earlier run in the progress file ``path`` that this run (whose settings
    are ``header``) continues from, in the order written. The rule, for detect and predict:

    - ``overwrite``: start over. The progress file is deleted, nothing is reused.
    - a progress file written with the same header: its records (an interrupted run continues;
      detect, which keeps its progress file, writes a finished run's outputs again).
    - a progress file written with another header: ConfigError naming what differs.
    - no progress file (or one that holds nothing, such as a header torn by a crash) while any of
      ``outputs`` exists: the outputs of a finished run whose settings are unknown: ConfigError
      (as zamba refuses to write over predictions).
    - otherwise: [], a fresh run.

    ``overwrite_hint``: how the user asks for ``overwrite`` (named in the messages).
    """
    path = Path(path)
    if overwrite:
        path.unlink(missing_ok=True)
        return []
    if path.exists():
        earlier = read_header(path)
        records = _read_records(path)
        if earlier is None and records:
            raise ConfigError(
                f"{path.parent}: the progress file {path.name} of an earlier run is damaged (its first line does "
                f"not say which settings its {len(records)} results were made with): {_start_over(overwrite_hint)}"
            )
        if earlier is None:
            path.unlink()  # nothing in it: a crash cut its first line short
        elif earlier != header:
            differences = describe_differences(earlier, header)
            raise ConfigError(
                f"{path.parent} holds the results of an earlier run made with other settings "
                f"({'; '.join(differences[:6])}{'; ...' if len(differences) > 6 else ''}). "
                f"Run with those settings to continue it, or {_start_over(overwrite_hint)}"
            )
        else:
            return records
    check_finished_outputs(path, outputs, overwrite_hint=overwrite_hint)
    return []


def check_finished_outputs(path: Path, outputs: Sequence[Path], *, overwrite_hint: str = "--overwrite") -> None:
    """The part of :func:`records_to_resume`'s rule that needs no header (so a command can refuse
    before it resolves its model): ConfigError when there is no progress file ``path`` but some of
    ``outputs`` exist."""
    if Path(path).exists():
        return
    existing = [Path(p).name for p in outputs if Path(p).exists()]
    if existing:
        raise ConfigError(f"{Path(path).parent} already holds {' and '.join(existing)}: {_start_over(overwrite_hint)}")


def _start_over(overwrite_hint: str) -> str:
    return f"pass {overwrite_hint} to start over (the earlier results are replaced), or choose another folder"


def _read_records(path: Path) -> list[dict[str, Any]]:
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


def describe_differences(then: Any, now: Any, name: str = "") -> list[str]:
    """What differs between two headers, field by field: ``["video_loader_config.fps: 2.0 then,
    1.0 now"]`` (nested mappings are compared key by key, anything else as a whole)."""
    if isinstance(then, dict) and isinstance(now, dict):
        differences = []
        for key in list(then) + [k for k in now if k not in then]:
            field = f"{name}.{key}" if name else str(key)
            differences += describe_differences(then.get(key, _NOT_SET), now.get(key, _NOT_SET), field)
        return differences
    if then == now:
        return []
    return [f"{name}: {_shown(then)} then, {_shown(now)} now"]


_NOT_SET = object()


def _shown(value: Any) -> str:
    if value is _NOT_SET:
        return "not set"
    if isinstance(value, str):
        # Hashes (weights, checkpoints) are long: their start tells them apart.
        return value if len(value) <= 24 else value[:12] + "..."
    return json.dumps(value, ensure_ascii=False)


def file_fingerprint(path: Path) -> Optional[list]:
    """[size, mtime_ns] of a file (None if it cannot be read): a record made for a file that has
    changed since is not reused."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]
