"""Writing files so that a crash or an error never leaves a half-written one in place."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def atomic_write(path: Path, mode: str = "wb", **open_args) -> Iterator[IO]:
    """A file to write ``path``'s new content into: it replaces ``path`` only when the block
    ends without an error, else it is removed. Readable by all (mkstemp would make it private)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode, **open_args) as out:
            yield out
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)


def write_text_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8, newlines as given) in one step."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as out:
        out.write(text)
