"""Which files are videos or still images, and finding them in folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

# Containers field cameras write; FFmpeg reads them all. Matched case-insensitively.
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".mov", ".avi", ".mkv", ".m4v", ".asf", ".wmv", ".mts", ".m2ts", ".3gp", ".webm", ".mpg", ".mpeg"}
)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_media(path: str | Path) -> bool:
    suffix = Path(path).suffix.lower()
    return suffix in VIDEO_SUFFIXES or suffix in IMAGE_SUFFIXES


def is_hidden(path: Path) -> bool:
    """Hidden files and folders, including the ``._name`` companions macOS writes on SD cards."""
    return path.name.startswith(".")


def find_media(folder: str | Path, *, images: bool = True) -> Iterator[Path]:
    """Every video (and still image) file under ``folder``, sorted, skipping hidden entries.

    A folder whose name looks like a video ("clip.avi/") is not a video and is descended into.
    """
    folder = Path(folder)
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if is_hidden(path):
                continue
            suffix = path.suffix.lower()
            if suffix in VIDEO_SUFFIXES or (images and suffix in IMAGE_SUFFIXES):
                yield path
