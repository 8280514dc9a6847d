"""Fast mode's screen as pure functions: which planned frames it looks at, and which ones a hit
sends on to exact mode's scoring."""

from __future__ import annotations

from kifaru.video.screen import near_hits, screen_positions

QUARTERS = [i / 4 for i in range(12)]  # a 3 s plan at 4 frames a second


def test_one_frame_a_second_the_first_of_each_second_without_keyframes():
    assert screen_positions(QUARTERS, [False] * 12, per_second=1.0) == [0, 4, 8]


def test_a_seconds_keyframe_is_looked_at_rather_than_its_first_frame():
    """A keyframe decodes alone; another frame needs every frame since its keyframe."""
    keyframes = [i in (0, 5, 6, 9) for i in range(12)]
    assert screen_positions(QUARTERS, keyframes, per_second=1.0) == [0, 5, 9]


def test_fewer_screen_frames_at_a_lower_rate_and_seconds_counted_from_the_first_frame():
    assert screen_positions(QUARTERS, [False] * 12, per_second=0.5) == [0, 8]
    later = [t + 0.3 for t in QUARTERS]  # a clip whose first frame is at 0.3 s
    assert screen_positions(later, [False] * 12, per_second=1.0) == [0, 4, 8]
    assert screen_positions([], [], per_second=1.0) == []


def test_frames_near_a_hit_and_only_those():
    assert near_hits(QUARTERS, [1.0], seconds=0.5) == [2, 3, 4, 5, 6]
    assert near_hits(QUARTERS, [0.0, 2.75], seconds=0.25) == [0, 1, 10, 11]
    assert near_hits(QUARTERS, [], seconds=1.0) == []
