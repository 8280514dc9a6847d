"""Frame selection rules, as pure functions over timestamps."""

from fractions import Fraction

import numpy as np
import pytest

from kifaru.config import VideoLoaderConfig
from kifaru.config.video import EARLY_BIAS_FRAME_INDICES
from kifaru.video.selection import (
    SceneChangeScorer,
    ensure_frame_count,
    pick_stream_positions,
    plan_by_timestamps,
    rate_as_fraction,
    resample_to_fps,
)


def regular(n: int, fps: int) -> list[Fraction]:
    return [Fraction(i, fps) for i in range(n)]


def test_fps_counts_follow_ffmpeg_round_up():
    # The spec's example: a 61 s clip at 1 fps gives 244 frames at fps=4 and 31 at fps=0.5.
    times = regular(61, 1)
    assert len(resample_to_fps(times, Fraction(61), 4)) == 244
    assert len(resample_to_fps(times, Fraction(61), 0.5)) == 31


def test_fps_upsampling_repeats_each_frame():
    plan = resample_to_fps(regular(3, 1), Fraction(3), 2)
    assert plan == [0, 0, 1, 1, 2, 2]


def test_fps_downsampling_picks_latest_frame_started_by_each_slot():
    # 30 fps -> 4 fps: slot k at k/4 s shows the last frame with ceil(t*4) <= k.
    times = regular(60, 30)
    plan = resample_to_fps(times, Fraction(2), 4)
    expected = [max(i for i, t in enumerate(times) if -(-t * 4 // 1) <= k) for k in range(8)]
    assert plan == expected
    assert plan[:3] == [0, 7, 15]


def test_fps_uses_timestamps_not_frame_counts():
    # A variable-frame-rate clip: a 2 s gap after frame 1 is filled with frame 1.
    times = [Fraction(0), Fraction(1), Fraction(3), Fraction(4)]
    assert resample_to_fps(times, Fraction(5), 1) == [0, 1, 1, 2, 3]


def test_fps_starts_at_first_frame_time():
    times = [Fraction(10), Fraction(11)]
    assert resample_to_fps(times, Fraction(12), 1) == [0, 1]


def test_rate_as_fraction_matches_ffmpeg_rational():
    assert rate_as_fraction(4) == Fraction(4)
    assert rate_as_fraction(16 / 15.0) == Fraction(16, 15)


def test_pick_stream_positions_is_ffmpeg_select():
    plan = [10, 11, 12, 13]
    assert pick_stream_positions(plan, [3, 0, 0, 9]) == [10, 13]


def test_early_bias_is_24fps_then_fixed_indices():
    times = regular(300, 30)  # 10 s at 30 fps
    config = VideoLoaderConfig(early_bias=True)
    plan = plan_by_timestamps(config, times, Fraction(10), 10.0)
    at_24 = resample_to_fps(times, Fraction(10), 24)
    assert plan == [at_24[i] for i in EARLY_BIAS_FRAME_INDICES]
    assert len(plan) == 16


def test_evenly_sample_spreads_total_frames_over_duration():
    times = regular(300, 30)
    config = VideoLoaderConfig(total_frames=5, evenly_sample_total_frames=True)
    assert plan_by_timestamps(config, times, Fraction(10), 10.0) == [0, 60, 120, 180, 240]


def test_frame_indices_apply_after_resampling():
    times = regular(100, 10)
    config = VideoLoaderConfig(fps=2, frame_indices=[1, 3])
    assert plan_by_timestamps(config, times, Fraction(10), 10.0) == [5, 15]


def test_i_frames_keeps_each_keyframe_once():
    keyframes = [i % 4 == 0 for i in range(10)]
    config = VideoLoaderConfig(i_frames=True)
    assert plan_by_timestamps(config, regular(10, 1), Fraction(10), 10.0, keyframes) == [0, 4, 8]


def test_ensure_frame_count_clips_and_repeats_last():
    assert ensure_frame_count([1, 2, 3], 2) == [1, 2]
    assert ensure_frame_count([1, 2], 4) == [1, 2, 2, 2]
    assert ensure_frame_count([], 4) == []
    assert ensure_frame_count([5], None) == [5]


def test_scene_scores_flag_a_cut_but_not_steady_frames():
    scorer = SceneChangeScorer()
    dark, bright = np.full((8, 8), 10, np.uint8), np.full((8, 8), 200, np.uint8)
    scores = [scorer.score([frame]) for frame in (dark, dark, dark, bright, bright)]
    assert scores[0] == 0.0 and scores[1] == 0.0 and scores[2] == 0.0
    assert scores[3] == pytest.approx(1.0)  # min(190, |190-0|)/100 clipped
    assert scores[4] == 0.0


def test_video_starting_after_the_container_repeats_its_first_frame_from_zero():
    # Audio starts at 0 and video at 0.3 s: ffmpeg's constant-rate output fills 0 and 0.25 s.
    times = [Fraction(3, 10) + Fraction(i, 10) for i in range(10)]
    assert resample_to_fps(times, Fraction(13, 10), 4) == [2, 4, 7, 9]
    assert resample_to_fps(times, Fraction(13, 10), 4, from_zero=True) == [2, 2, 2, 4, 7, 9]
    # The padding repeats the filter's first output, which need not be the first frame.
    times = [Fraction(1, 10) * i + Fraction(1, 10) for i in range(10)]
    assert resample_to_fps(times, Fraction(11, 10), 2, from_zero=True) == [4, 4, 9]
