"""Frame selection as pure functions over presentation timestamps.

A *plan* is the list of source frame indices (presentation order) that make up the output, in
output order; an index may repeat (resampling to a higher rate duplicates frames, as FFmpeg does).
Nothing here decodes or touches files, so every rule is testable with plain lists of numbers.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Optional, Sequence

import numpy as np

from kifaru.config.video import EARLY_BIAS_FPS, EARLY_BIAS_FRAME_INDICES, VideoLoaderConfig

# FFmpeg parses a frame rate given as a decimal string into a rational with this denominator bound
# (av_parse_video_rate -> av_d2q(rate, 1001000)); matching it keeps frame counts identical.
_FFMPEG_RATE_MAX_DENOMINATOR = 1001000


def rate_as_fraction(fps: float | Fraction) -> Fraction:
    """The rational FFmpeg would use for a frame rate given as a number."""
    if isinstance(fps, Fraction):
        return fps
    return Fraction(repr(float(fps))).limit_denominator(_FFMPEG_RATE_MAX_DENOMINATOR)


def resample_to_fps(
    timestamps: Sequence[Fraction], end_time: Fraction, fps: float | Fraction, *, from_zero: bool = False
) -> list[int]:
    """Which source frame fills each output slot of FFmpeg's ``fps=F:round=up`` filter.

    ``timestamps`` are the presentation times (seconds from the container's start, sorted) of
    the source frames and ``end_time`` the time the last frame stops being shown (its time plus
    its duration). Slots are the multiples of 1/F from the first frame's (rounded-up) time until
    ``end_time`` (rounded up); each shows the latest frame that started at or before it. So a
    61 s clip at 1 fps gives 244 slots at fps=4 and 31 at fps=0.5.

    ``from_zero`` also fills the slots between the container's start and a later first frame
    with the filter's first output, as ffmpeg's constant-frame-rate output does after the filter
    (zamba's pipeline, except when it picks frame_indices).
    """
    if not timestamps:
        return []
    rate = rate_as_fraction(fps)
    rounded = [math.ceil(t * rate) for t in timestamps]
    first_slot = rounded[0]
    end_slot = math.ceil(end_time * rate)
    slots = np.arange(first_slot, max(end_slot, first_slot), dtype=np.int64)
    plan = (np.searchsorted(np.asarray(rounded, dtype=np.int64), slots, side="right") - 1).tolist()
    if from_zero and first_slot > 0 and plan:
        plan = [plan[0]] * first_slot + plan
    return plan


def pick_stream_positions(plan: Sequence[int], positions: Sequence[int]) -> list[int]:
    """FFmpeg's ``select=eq(n,a)+eq(n,b)...``: the plan's entries at those positions, each once,
    in stream order; positions past the end are ignored."""
    wanted = sorted({p for p in positions if 0 <= p < len(plan)})
    return [plan[p] for p in wanted]


def evenly_sampled_fps(total_frames: int, duration: float) -> float:
    """The rate that spreads ``total_frames`` over the clip's duration (zamba's rule)."""
    if duration <= 0:
        raise ValueError("the clip has no duration to sample from")
    return total_frames / duration


def plan_by_timestamps(
    config: VideoLoaderConfig,
    timestamps: Sequence[Fraction],
    end_time: Fraction,
    duration: float,
    keyframes: Optional[Sequence[bool]] = None,
) -> list[int]:
    """The source frames a config selects, for every mode decided by timestamps alone
    (everything except scene_threshold, which needs the pixels, and MegadetectorLite)."""
    plan: list[int] = list(range(len(timestamps)))
    # zamba's ffmpeg writes frame_indices picks as they come (vsync 0) and everything else at a
    # constant rate, which repeats the first frame from the container's start.
    from_zero = not (config.early_bias or config.frame_indices)
    if config.evenly_sample_total_frames:
        fps = evenly_sampled_fps(config.total_frames, duration)
        plan = resample_to_fps(timestamps, end_time, fps, from_zero=from_zero)
    elif config.early_bias:
        plan = resample_to_fps(timestamps, end_time, EARLY_BIAS_FPS, from_zero=from_zero)
    elif config.fps:
        plan = resample_to_fps(timestamps, end_time, config.fps, from_zero=from_zero)
    if config.i_frames:
        if keyframes is None:
            raise ValueError("i_frames needs the keyframe flags")
        plan = [index for index in plan if keyframes[index]]
    if config.early_bias:
        plan = pick_stream_positions(plan, EARLY_BIAS_FRAME_INDICES)
    elif config.frame_indices:
        plan = pick_stream_positions(plan, config.frame_indices)
    return plan


def wanted_total_frames(config: VideoLoaderConfig) -> Optional[int]:
    """How many frames ensure_total_frames aims for (early_bias implies 16), or None."""
    if config.early_bias:
        return len(EARLY_BIAS_FRAME_INDICES)
    return config.total_frames


def ensure_frame_count(plan: Sequence[int], total: Optional[int]) -> list[int]:
    """Clip a plan to ``total`` entries or repeat its last one; an empty plan stays empty."""
    if total is None or not plan:
        return list(plan)
    if len(plan) >= total:
        return list(plan[:total])
    return list(plan) + [plan[-1]] * (total - len(plan))


class SceneChangeScorer:
    """FFmpeg's ``scene`` score, one frame at a time (only the previous frame is kept).

    With mafd the mean absolute difference from the previous frame over all planes,
    score = min(mafd, |mafd - previous mafd|) / 100, clipped to [0, 1]; the first frame scores 0.
    """

    def __init__(self) -> None:
        self._previous: Optional[list[np.ndarray]] = None
        self._previous_mafd = 0.0

    def score(self, planes: Sequence[np.ndarray]) -> float:
        current = [np.asarray(plane, dtype=np.int16) for plane in planes]
        previous, self._previous = self._previous, current
        if previous is None or [p.shape for p in previous] != [c.shape for c in current]:
            return 0.0
        sad = sum(int(np.abs(after - before).sum()) for before, after in zip(previous, current))
        mafd = sad / sum(plane.size for plane in current)
        score = min(mafd, abs(mafd - self._previous_mafd)) / 100.0
        self._previous_mafd = mafd
        return min(max(score, 0.0), 1.0)


# -- selection by detector scores (MegadetectorLite) ------------------------------------------


def rank_by_score(scores: np.ndarray) -> np.ndarray:
    """Frame indices by score, highest first; equal scores in chronological order."""
    indices = np.arange(len(scores))
    return indices[np.lexsort((indices, -scores))]


def select_by_scores(
    scores: Sequence[float],
    *,
    confidence: float,
    n_frames: Optional[int],
    fill_mode: str,
    sort_by_time: bool = True,
    seed: Optional[int] = 55,
) -> tuple[list[int], Optional[str]]:
    """zamba's ``filter_frames``: which frames (indices into ``scores``) to keep, and a note when
    kifaru had to do something else than zamba would.

    Frames scoring above ``confidence`` are ranked (score descending, earlier first on ties). With
    no ``n_frames`` all ranked frames are kept; with at least ``n_frames`` ranked, the top ones.
    Otherwise the rest is filled by ``fill_mode`` with ``numpy.random.RandomState(seed)``, drawing
    exactly what zamba draws. Where zamba fails (``repeat`` or ``weighted_euclidean`` with no
    frame above the threshold, or a weighted draw of more frames than exist) kifaru falls back to
    ``score_sorted``, or takes every remaining frame, and says so in the note.
    """
    scores = np.asarray(scores, dtype=np.float64)
    above = np.flatnonzero(scores > confidence)
    selected = above[np.lexsort((above, -scores[above]))]
    note = None
    missing = 0 if n_frames is None else n_frames - len(selected)
    if n_frames is not None and missing <= 0:
        selected = selected[:n_frames]
    elif missing > 0:
        rng = np.random.RandomState(seed)
        if fill_mode in ("repeat", "weighted_euclidean") and len(selected) == 0:
            note = (
                f"no frame scored above the detector's confidence {confidence}; {fill_mode} needs at "
                "least one, so the frames were filled as score_sorted does"
            )
            fill_mode = "score_sorted"
        if fill_mode == "repeat":
            selected = np.concatenate((selected, rng.choice(selected, missing, replace=True)))
        elif fill_mode == "score_sorted":
            selected = rank_by_score(scores)[:n_frames]
        elif fill_mode in ("weighted_euclidean", "weighted_prob") and len(selected) > 0:
            # zamba's weighted_prob keeps only the ranked frames when none is ranked.
            # zamba draws from the frames in pandas' descending sort order, in which numpy's
            # unstable quicksort leaves equal scores in an order that changes with the CPU and
            # numpy build; kifaru puts them in chronological order, the same everywhere.
            order = rank_by_score(scores)
            sample_from = order[~np.isin(order, selected)]
            if fill_mode == "weighted_euclidean":
                weights = np.array([1 / np.linalg.norm(selected - frame) for frame in sample_from], dtype=float)
            else:
                weights = scores[sample_from].astype(float)
            if missing > len(sample_from):
                note = (
                    f"{n_frames} frames were asked for but the clip has only {len(scores)} to choose "
                    "from; all of them are used"
                )
                missing = len(sample_from)
            if missing:
                selected, weighted_note = _weighted_draw(rng, selected, sample_from, weights, missing)
                note = note or weighted_note
    indices = [int(i) for i in selected]
    return (sorted(indices) if sort_by_time else indices), note


def _weighted_draw(
    rng: np.random.RandomState, selected: np.ndarray, sample_from: np.ndarray, weights: np.ndarray, count: int
) -> tuple[np.ndarray, Optional[str]]:
    """``count`` more frames drawn without replacement, weighted (zamba's draw, same RNG calls).

    zamba fails when fewer frames have a non-zero weight than are needed (weighted_prob with
    many frames scoring 0); kifaru then draws all weighted frames and the rest uniformly.
    """
    total = weights.sum()
    weights = weights / total if total > 0 else np.full(len(sample_from), 1 / len(sample_from))
    positive = int(np.count_nonzero(weights))
    if count <= positive:
        return np.concatenate((selected, rng.choice(sample_from, count, replace=False, p=weights))), None
    drawn = rng.choice(sample_from, positive, replace=False, p=weights)
    rest = rng.choice(sample_from[weights == 0], count - positive, replace=False)
    note = (
        f"only {positive} of the frames not above the threshold scored above 0; the other "
        f"{count - positive} were drawn uniformly"
    )
    return np.concatenate((selected, drawn, rest)), note

