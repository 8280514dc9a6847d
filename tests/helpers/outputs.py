"""Two runs' output folders compared file by file: the same bytes, except the times a JSON output
holds of when its run ended (MegaDetector's completion times)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

CLOCK_KEYS = {"detection_completion_time", "classification_completion_time", "inference_start_time"}


def without_clock(value):
    if isinstance(value, dict):
        return {k: without_clock(v) for k, v in value.items() if k not in CLOCK_KEYS}
    if isinstance(value, list):
        return [without_clock(v) for v in value]
    return value


def assert_same_outputs(one: Path, other: Path, names: Iterable[str]) -> None:
    for name in names:
        a, b = (Path(one) / name).read_bytes(), (Path(other) / name).read_bytes()
        if name.endswith(".json"):
            assert without_clock(json.loads(a)) == without_clock(json.loads(b)), name
        else:
            assert a == b, name
