"""The frame cache: selected frames saved once per (video file, loader config).

Layout: ``<cache_dir>/<sha1 of the config>/<video name>-<sha1 of path, size, mtime>.npz``.
The file's size and modification time are part of the name, so an entry written for an older
file at the same path is never served. Writes go to a temporary file renamed into place, so a
killed run never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Optional

import numpy as np

from kifaru.config.video import VideoLoaderConfig
from kifaru.files import atomic_write


def config_hash(config: VideoLoaderConfig) -> str:
    """sha1 of every field that changes the frames (all but cache_dir and cleanup_cache)."""
    text = json.dumps(config.cache_key_fields(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def file_fingerprint(path: Path) -> str:
    stat = path.stat()
    text = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


class FrameCache:
    """Read and write cached frame arrays for one loader config."""

    def __init__(self, cache_dir: Path, config: VideoLoaderConfig) -> None:
        self.folder = Path(cache_dir) / config_hash(config)

    def entry_path(self, video: Path) -> Path:
        return self.folder / f"{video.name}-{file_fingerprint(video)}.npz"

    def get(self, video: Path) -> Optional[dict[str, np.ndarray]]:
        path = self.entry_path(video)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError, EOFError):
            return None  # unreadable entry (disk trouble): decode again and overwrite it

    def put(self, video: Path, arrays: dict[str, np.ndarray]) -> None:
        path = self.entry_path(video)
        with atomic_write(path) as file:
            np.savez(file, **arrays)

    def clear(self) -> None:
        """Remove this config's entries (cleanup_cache); the cache folder itself stays."""
        shutil.rmtree(self.folder, ignore_errors=True)
