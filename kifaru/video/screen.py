"""Fast mode's screen, as pure functions over the plan's times: which planned frames a cheap
first look scores, and which ones a hit sends on to exact mode's scoring.

Exact mode scores every planned frame (4 a second with time_distributed's defaults) at the
detector's full input. Most clips off a trail camera are empty, and an animal in view stays for
seconds: the screen looks at one planned frame a second (a keyframe where the second has one,
which decodes alone), at a smaller detector input. A clip in which no screen frame reaches the
screen's threshold is called empty by the detector, and nothing more is done with it. Otherwise
the planned frames within ``near_seconds`` of a hit are scored as exact mode scores them; the
others count as scoring 0, which is what a frame below the detector's confidence counts for in
zamba's selection, so where they are below it the frames chosen are exact mode's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Screen:
    """How the screen looks (fast mode's settings; benchmarks/fast_candidates.py measured them)."""

    image_size: int = 320  # the detector's input for the screen, square
    threshold: float = 0.1  # a screen frame whose best box scores this much sends the clip on
    per_second: float = 1.0  # screen frames per second of the clip
    near_seconds: float = 1.0  # planned frames this close to a hit are scored at the full input

    def describe(self) -> dict:
        return {"image_size": self.image_size, "threshold": self.threshold, "per_second": self.per_second, "near_seconds": self.near_seconds}


def screen_positions(times: Sequence[float], keyframes: Sequence[bool], per_second: float) -> list[int]:
    """Positions (into ``times``, the planned frames in time order) of the frames the screen
    scores: in each interval of 1/per_second seconds from the first frame, its first keyframe
    if it has one (it decodes without the frames before it), else its first frame."""
    chosen: dict[int, int] = {}
    start = times[0] if len(times) else 0.0
    for position, (time, key) in enumerate(zip(times, keyframes)):
        interval = math.floor((time - start) * per_second + 1e-9)
        if interval not in chosen or (key and not keyframes[chosen[interval]]):
            chosen[interval] = position
    return sorted(chosen.values())


def near_hits(times: Sequence[float], hit_times: Sequence[float], seconds: float) -> list[int]:
    """Positions (into ``times``) of the planned frames at most ``seconds`` from a hit."""
    return [position for position, time in enumerate(times) if any(abs(time - hit) <= seconds + 1e-9 for hit in hit_times)]
