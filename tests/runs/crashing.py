"""Stand-ins for files that kill the worker process working on them, for the tests of the
backends' crash isolation. A file whose name starts with "crash" is killed by SIGKILL (as a
segfault in FFmpeg or the out-of-memory killer ends a process: no exception, no cleanup); one
starting with "exit" calls ``os._exit(3)``; any other file is run by kifaru's own worker function.
The tests put :func:`run_or_crash` in place of that function in the main process; the workers
(spawned) import this module by name to run it."""

from __future__ import annotations

import os
import signal
from typing import Any

from kifaru.runs import backends
from kifaru.runs.inputs import Item


def run_or_crash(item: Item) -> Any:
    if item.path.name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGKILL)
    if item.path.name.startswith("exit"):
        os._exit(3)
    return backends._run_in_worker(item)
