"""Notices: what the library tells the person running it about slow steps nobody asked for by
name, such as a model's first download or its export to ONNX Runtime. The library never prints:
it sends :class:`Notice` objects to whoever listens (the ``kifaru`` command prints them).

    with listening(print_it):
        predict_model(config)

Listeners are process-wide (the detector exports its banded networks from worker threads); a
process that nobody listens to, a worker process say, sends nowhere.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Optional


@dataclass(frozen=True)
class Notice:
    """A step the user should hear about: ``message`` in words. A download in progress sends
    notices with the same ``download`` name and the bytes done so far (``total`` None when the
    server does not say)."""

    message: str = ""
    download: Optional[str] = None  # set on a download's progress notices: the model's name
    done: int = 0
    total: Optional[int] = None


Listener = Callable[[Notice], None]

_listeners: list[Listener] = []
_lock = threading.Lock()


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Send every notice of this process to ``listener`` while the block runs."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def notify(message: str) -> None:
    """Tell the listeners, if any, ``message`` (one sentence, no trailing newline)."""
    _send(Notice(message))


def download_progress(name: str) -> Callable[[int, Optional[int]], None]:
    """A ``progress(done, total)`` callback for a download of model ``name``, sent as notices."""

    def progress(done: int, total: Optional[int]) -> None:
        _send(Notice(download=name, done=done, total=total))

    return progress


def _send(notice: Notice) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(notice)
