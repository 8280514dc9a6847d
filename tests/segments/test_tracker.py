"""The IoU tracker and a clip's segments, on synthetic detector frames: shapes that enter at t1
and leave at t2 (once, twice, two at once) come out within one scored-frame interval of the truth."""

from __future__ import annotations

import pytest

from kifaru.segments.segments import clip_segments, clip_species
from kifaru.segments.tracker import iou, link_tracks

FPS = 2.0  # scored frames per second


def _frames(duration: float, animals: list[tuple[float, float, float]], score: float = 0.8, misses: frozenset = frozenset()) -> list[dict]:
    """Scored frames every 1/FPS s; each animal (t_in, t_out, y) a box walking left to right at
    height y while t_in <= t < t_out; ``misses``: indices of scored frames where the detector misses them all."""
    frames = []
    for number in range(int(duration * FPS) + 1):
        t = number / FPS
        detections = []
        for t_in, t_out, y in animals:
            if t_in <= t < t_out and number not in misses:
                x = 0.05 + 0.6 * (t - t_in) / (t_out - t_in)
                detections.append([x, y, x + 0.3, y + 0.25, score])
        detections.append([0.9, 0.9, 0.95, 0.95, 0.1])  # under the threshold everywhere
        frames.append({"frame_number": number * 15, "time": t, "detections": detections})
    return frames


def _within_one_interval(segment, t_in: float, t_out: float) -> bool:
    step = 1 / FPS
    return t_in <= segment.start < t_in + step and t_out - step <= segment.end < t_out


def test_one_animal_enters_and_leaves():
    segments = clip_segments("a.mp4", _frames(20, [(3.2, 11.7, 0.3)]), threshold=0.2)
    assert len(segments) == 1 and _within_one_interval(segments[0], 3.2, 11.7)
    assert segments[0].segment == 1 and segments[0].max_detection_confidence == 0.8


def test_two_visits_are_two_segments_and_one_missed_frame_is_not_a_gap():
    frames = _frames(30, [(2.0, 8.3, 0.3), (15.6, 24.0, 0.3)], misses=frozenset({5}))  # t = 2.5 s
    segments = clip_segments("a.mp4", frames, threshold=0.2)
    assert [(s.segment, _within_one_interval(s, *truth)) for s, truth in zip(segments, [(2.0, 8.3), (15.6, 24.0)])] == [(1, True), (2, True)]
    assert len(segments) == 2
    # Without tolerance for a miss, the first visit is cut where the detector missed it.
    assert len(clip_segments("a.mp4", frames, threshold=0.2, max_missed=0)) == 3


def test_two_animals_at_once_keep_their_own_tracks():
    segments = clip_segments("a.mp4", _frames(20, [(1.0, 12.0, 0.05), (4.4, 17.0, 0.6)]), threshold=0.2)
    assert len(segments) == 2
    assert _within_one_interval(segments[0], 1.0, 12.0) and _within_one_interval(segments[1], 4.4, 17.0)
    assert segments[0].best_box[1] == 0.05 and segments[1].best_box[1] == 0.6


def test_the_best_frame_and_the_clip_s_species():
    frames = _frames(6, [(0.0, 5.0, 0.3)])
    frames[4]["detections"][0][4] = 0.95
    (segment,) = clip_segments("a.mp4", frames, 0.2, ["blank", "lion", "zebra"], [0.5, 0.2, 0.3])
    assert segment.best_frame_number == frames[4]["frame_number"] and segment.max_detection_confidence == 0.95
    assert segment.best_box == tuple(frames[4]["detections"][0][:4])
    assert (segment.species, segment.probability) == ("zebra", 0.3)  # blank is no animal's name
    assert clip_species(["blank"], [1.0]) == (None, None) and clip_species(["lion"], None) == (None, None)


def test_nothing_above_the_threshold_gives_no_segment():
    assert clip_segments("a.mp4", _frames(10, [(1.0, 5.0, 0.3)], score=0.15), threshold=0.2) == []
    assert link_tracks([], 0.2) == []


def test_iou():
    assert iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0
    assert iou((0, 0, 2, 1), (1, 0, 3, 1)) == pytest.approx(1 / 3)
    assert iou((0, 0, 1, 1), (1, 1, 2, 2)) == 0.0 and iou((0, 0, 0, 1), (0, 0, 0, 1)) == 0.0
    with pytest.raises(ValueError, match="min_iou"):
        link_tracks([], 0.2, min_iou=2)
