"""Everything the CLI shows while a command runs, on stderr: the progress of a run over files, the
library's notices (a first download, an ONNX export) and warnings. The library never prints: it
reports records and notices, and this module shows them."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

from kifaru.progress import format_duration

if TYPE_CHECKING:
    from kifaru.notices import Notice
    from kifaru.runs.records import Record


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def show_warnings(caught: Iterable[Any], skip: tuple[type, ...] = ()) -> None:
    """Warnings recorded by ``warnings.catch_warnings(record=True)``, as one line each."""
    for warning in caught:
        if not issubclass(warning.category, skip):
            warn(str(warning.message))


class ProgressBar:
    """Files done and failed and the time left: one line redrawn on a terminal, a line per file
    otherwise (logs). Failures and warnings are always printed on their own line.

    ``outcome``: a finished file's result in words, for its line in a log ("animal in 2 of 3
    frames"); by default "done"."""

    def __init__(self, quiet: bool = False, outcome: Optional[Callable[["Record"], str]] = None) -> None:
        self.quiet = quiet
        self.outcome = outcome or (lambda record: "done")
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self.first_new: Optional[int] = None  # files done when this run's own work began
        self.failed = 0
        self.drawn = False

    def update(self, record: "Record", done: int, total: int) -> None:
        self.failed += record.failed
        now = time.monotonic()
        if self.first_new is None and now - self.started > 0.5:
            self.first_new = done - 1  # records before this came from an earlier run
        rate_base = self.first_new or 0
        left = ""
        if done > rate_base and done < total:
            seconds = (now - self.started) / (done - rate_base) * (total - done)
            left = f", ~{format_duration(seconds)} left"
        status = f"[{done}/{total} files, {self.failed} failed{left}]"
        notes = [f"warning: {n}" for n in record.notes]
        if self.tty:
            self._clear()
            for message in [f"FAILED ({record.stage}): {record.reason}"] if record.failed else notes:
                print(f"{record.filepath}: {message}", file=sys.stderr)
            print(f"\r{status}", end="", file=sys.stderr, flush=True)
            self.drawn = True
        elif not self.quiet or record.failed or notes:
            outcome = f"FAILED ({record.stage}): {record.reason}" if record.failed else "; ".join([self.outcome(record), *notes])
            print(f"{status} {record.filepath}: {outcome}", file=sys.stderr)

    def _clear(self) -> None:
        if self.drawn:
            print("\r\033[K", end="", file=sys.stderr)

    def close(self) -> None:
        if self.tty and self.drawn:
            print(file=sys.stderr)


class DownloadProgress:
    """A download's progress on stderr: a line every 5 MB, and one at the end."""

    def __init__(self) -> None:
        self.shown: Optional[int] = None  # the MB on the last line printed

    def __call__(self, done: int, total: Optional[int]) -> None:
        megabytes = done // (1 << 20)
        step = megabytes >= (self.shown or 0) + 5
        end = total is not None and done == total and megabytes != self.shown  # not "35 MB of 35 MB" twice
        if step or end:
            self.shown = megabytes
            print(f"  {megabytes} MB" + (f" of {total // (1 << 20)} MB" if total else ""), file=sys.stderr)


class NoticePrinter:
    """The library's notices (kifaru.notices: a first download, an ONNX export) on stderr, so
    that no command is silent through a slow step the user did not ask for."""

    def __init__(self) -> None:
        self.downloads: dict[str, DownloadProgress] = {}

    def __call__(self, notice: "Notice") -> None:
        if notice.download is None:
            # On a terminal, over a progress line that may be drawn there (redrawn at its next update).
            print(("\r\033[K" if sys.stderr.isatty() else "") + notice.message, file=sys.stderr)
            return
        self.downloads.setdefault(notice.download, DownloadProgress())(notice.done, notice.total)
        if notice.total is not None and notice.done >= notice.total:
            del self.downloads[notice.download]


def device_description(device: str) -> str:
    """``cpu (2 cores)``, ``cuda:0 (NVIDIA H100)``: the device a banner names."""
    if device == "cpu":
        from kifaru.runtime.device import usable_cores

        return f"cpu ({usable_cores()} cores)"
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device
