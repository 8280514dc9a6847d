"""Words for progress and summary lines: durations and counts."""

from __future__ import annotations

from typing import Optional


def format_duration(seconds: float) -> str:
    """A time left for progress lines: "40 s", "12 min", "3.5 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plural(count: int, noun: str, nouns: Optional[str] = None) -> str:
    """``count`` and the noun agreeing with it, for progress and summary lines: "1 file",
    "3 files", "0 files" (``nouns``: the plural where it is not ``noun`` + "s")."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"
