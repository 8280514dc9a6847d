"""Paths as MegaDetector files write them: relative to the folder Timelapse opens (its root).

Timelapse matches an entry to a file by its path under the root folder; an absolute path, or one
relative to another folder, matches nothing, silently. So every path is written relative to the
run's root, and a run whose files are not all under its root is refused before it starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

from kifaru.exceptions import ConfigError


def absolute(name: str, base: Path) -> Path:
    path = Path(name)
    return (path if path.is_absolute() else Path(base) / path).resolve()


def relative_path(name: str, root: Path, base: Path) -> str:
    """``name`` (an input as the run names it) relative to ``root``, with forward slashes."""
    try:
        return absolute(name, base).relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        raise ConfigError(f"{name} is not under {root}, the folder its path is written relative to") from None


def choose_root(names: Sequence[str], base: Path, *, relative_to: Optional[Path], data_dir: Optional[Path], option: str = "--relative-to") -> Path:
    """The folder MegaDetector paths are relative to: ``relative_to`` if given (every file must be
    under it: ConfigError naming the first that is not), else ``data_dir`` when every file is under
    it, else the deepest folder holding every file. Relative folders are read from ``base``."""
    files = [absolute(name, base) for name in names]
    if relative_to is not None:
        root = absolute(str(relative_to), base)
        outside = [f for f in files if not f.is_relative_to(root)]
        if outside:
            raise ConfigError(
                f"{option} {relative_to}: {outside[0]} is not under it ({len(outside)} of {len(files)} files are not); "
                "give the folder that holds every file (Timelapse's root folder)"
            )
        return root
    if data_dir is not None:
        root = absolute(str(data_dir), base)
        if all(f.is_relative_to(root) for f in files):
            return root
    if not files:
        return Path(base).resolve()
    return Path(os.path.commonpath([str(f.parent) for f in files]))
