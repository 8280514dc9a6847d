"""A stand-in for a decoder that crashes: what ClipLoader's worker processes run in the tests of
the worker-crash path. A file whose name starts with "crash" kills the worker process reading it
(SIGKILL, as a segfault in FFmpeg ends it: no exception, no cleanup); any other file is read by
kifaru's own worker function. The tests put :func:`load_or_crash` in place of that function in
the main process; the workers (spawned) import this module by name to run it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from kifaru.video import parallel


def load_or_crash(index: int, path: str) -> parallel.ClipResult:
    if Path(path).name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGKILL)
    return parallel._load_in_worker(index, path)
