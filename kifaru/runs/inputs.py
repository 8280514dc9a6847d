"""A run's inputs: the files of a folder (searched recursively) or of a CSV's ``filepath``
column, as items, each with its name in the outputs, where it is read from, and why it cannot be
read at all (then it gets a failure record without being opened)."""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from kifaru.exceptions import ConfigError
from kifaru.video.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES


@dataclass(frozen=True)
class Item:
    """One input of a run: ``name`` as the outputs write it, ``path`` where it is read from."""

    index: int  # position in the run's inputs
    name: str
    path: Path
    problem: Optional[str] = None  # why it is not read at all (a folder, a macOS "._" file, ...)


def problem_of(path: Path, media: str = "video") -> Optional[str]:
    """Why ``path`` cannot be a ``media`` file ("video", "photo") at all, or None."""
    if path.name.startswith("._"):
        return f"a macOS metadata file (the '._' companion of a copied file), not a {media}"
    if path.is_dir():
        return f"a folder, not a {media} file"
    if not path.exists():
        return "no such file"
    return None


def items_from(names: Iterable[str], base: Optional[Path] = None, media: str = "video") -> list[Item]:
    """Items for files named as the outputs will name them; ``base``: the folder relative names are
    read from (else the working folder)."""
    items = []
    for index, name in enumerate(names):
        path = Path(name) if base is None else Path(base) / name
        items.append(Item(index, str(name), path, problem_of(path, media)))
    return items


def suffixes_from_env(variable: str, default: frozenset[str]) -> frozenset[str]:
    """File suffixes named by env ``variable`` (zamba's, comma-separated, dot optional), else ``default``."""
    from_env = os.environ.get(variable)
    if from_env:
        return frozenset(s.strip().lower() if s.strip().startswith(".") else f".{s.strip().lower()}" for s in from_env.split(",") if s.strip())
    return default


def video_suffixes() -> frozenset[str]:
    """The suffixes taken as videos: env ``VIDEO_SUFFIXES`` (zamba's) or kifaru's list."""
    return suffixes_from_env("VIDEO_SUFFIXES", VIDEO_SUFFIXES)


@dataclass
class FolderListing:
    videos: list[Path]  # sorted, hidden files included (a caller records why they are not used)
    ignored: Counter = field(default_factory=Counter)  # suffix -> files that are not videos

    def describe_ignored(self) -> str:
        """e.g. "3 .jpg, 1 .txt" ("" when nothing was ignored)."""
        return ", ".join(f"{count} {suffix or '(no suffix)'}" for suffix, count in sorted(self.ignored.items()))

    @property
    def images_ignored(self) -> int:
        return sum(count for suffix, count in self.ignored.items() if suffix in IMAGE_SUFFIXES)


def list_videos(folder: Path, suffixes: Optional[frozenset[str]] = None) -> FolderListing:
    """Every file under ``folder`` with a video suffix (case-insensitive), searched recursively.

    Hidden folders (".Trashes", ".Spotlight-V100") are not searched; hidden files with a video
    suffix (macOS's "._clip.mp4" companions) are listed so that the caller can say why they are
    skipped. A folder named like a video ("clip.avi/") is searched, not listed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"data_dir {folder}: not a folder (give the folder that holds the videos)")
    suffixes = suffixes or video_suffixes()
    videos, ignored = [], Counter()
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            suffix = Path(name).suffix.lower()
            if suffix in suffixes:
                videos.append(Path(root) / name)
            else:
                ignored[suffix] += 1
    return FolderListing(videos, ignored)


def read_csv_rows(path: Path, what: str) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows) of a CSV file (UTF-8, with or without a BOM); ConfigError naming ``what``
    and the file when it cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            return list(reader.fieldnames or []), list(reader)
    except OSError as error:
        raise ConfigError(f"{what} {path}: cannot read it ({error.strerror})") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise ConfigError(f"{what} {path}: not a readable CSV file ({error})") from None


def read_filepaths_csv(path: Path, what: str = "filepaths") -> tuple[list[str], int]:
    """The ``filepath`` column of a CSV, duplicates dropped (first kept): (paths, duplicates)."""
    columns, rows = read_csv_rows(path, what)
    if "filepath" not in columns:
        raise ConfigError(f"{what} {path}: needs a 'filepath' column (found: {', '.join(columns) or 'none'})")
    listed = [row["filepath"] for row in rows if row.get("filepath")]
    unique = list(dict.fromkeys(listed))
    if not unique:
        raise ConfigError(f"{what} {path}: no file listed")
    return unique, len(listed) - len(unique)
