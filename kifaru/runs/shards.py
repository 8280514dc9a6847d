"""Shards: a run split over the jobs of a scheduler (a SLURM array), each taking a fixed part of
the files, merged afterwards into the outputs of one run (``kifaru merge``).

``--shard I/N`` keeps the files whose path, relative to the folder holding them all, hashes to
``I - 1`` modulo ``N``: the same files whatever order they are listed in and whichever machine
lists them (the folder may be mounted elsewhere), with no file in two shards and none left out.
Each shard keeps where its files stood in the whole list, so that the merge writes them in the
order one run would.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from kifaru.exceptions import ConfigError
from kifaru.runs.inputs import Item


@dataclass(frozen=True)
class Shard:
    index: int  # 1 .. count
    count: int

    @classmethod
    def parse(cls, text: str, option: str = "--shard") -> "Shard":
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
        if match is None:
            raise ConfigError(f"{option} {text}: give I/N, the shard's number and the number of shards (e.g. 2/8)")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or not 1 <= index <= count:
            raise ConfigError(f"{option} {text}: the shard's number must be 1 to {max(count, 1)} (SLURM: --array=1-{max(count, 1)})")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, key: str) -> bool:
        digest = hashlib.sha1(key.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1


@dataclass(frozen=True)
class ShardSelection:
    """A shard's items (numbered again from 0) and where each stood in the whole list."""

    shard: Shard
    items: list[Item]
    positions: list[int]
    total: int  # items in the whole list

    def describe(self) -> dict[str, Any]:
        """What the shard's outputs say of it (kifaru.outputs.RunDescription.shard)."""
        return {"index": self.shard.index, "count": self.shard.count, "inputs": self.total, "positions": self.positions}


def select_shard(
    items: Sequence[Item], shard: Optional[Shard], base: Path, group: Optional[Callable[[str, Item], str]] = None
) -> Optional[ShardSelection]:
    """The items of ``shard`` (None: no shard asked, so None). ``group(key, item)``: what is hashed
    instead of the item's relative path ``key``, so that items with one group stay together (a
    burst of photos)."""
    if shard is None:
        return None
    from kifaru.outputs.paths import absolute, choose_root

    root = choose_root([item.name for item in items], base, relative_to=None, data_dir=None)
    kept, positions = [], []
    for position, item in enumerate(items):
        try:
            key = absolute(item.name, base).relative_to(root).as_posix()
        except ValueError:  # not under the common folder: cannot happen, but never drop a file
            key = item.name
        if shard.holds(group(key, item) if group is not None else key):
            kept.append(Item(len(kept), item.name, item.path, item.problem))
            positions.append(position)
    return ShardSelection(shard, kept, positions, len(items))


def run_settings(header: dict[str, Any]) -> dict[str, Any]:
    """A journal's header without its shard: what every shard of one run has in common."""
    return {key: value for key, value in header.items() if key != "shard"}


def written_names(writers: Sequence[str], filenames: Optional[dict[str, str]] = None) -> dict[str, str]:
    """writer name -> the file it writes (its default name unless ``filenames`` gives one)."""
    from kifaru.outputs import get_writer

    return {name: (filenames or {}).get(name, get_writer(name).filename) for name in writers}
