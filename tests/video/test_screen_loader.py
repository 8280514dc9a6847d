"""FrameLoader in fast mode, on synthetic clips and a stand-in detector that scores a frame by
the index it shows: what the screen looks at and at which size, a clip it calls empty, and the
frames chosen where it sends a clip on (exact mode's, where the frames it leaves unscored are
below the detector's confidence)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kifaru.config import VideoLoaderConfig
from kifaru.video.loader import DECIDED_BY_CLASSIFIER, DECIDED_BY_DETECTOR, FrameLoader
from kifaru.video.screen import Screen
from tests.detection.fakes import IndexScoringDetector
from tests.media import index_frame, make_clip, read_indices

CONFIG = VideoLoaderConfig(fps=4, megadetector_lite_config={"n_frames": 4})
SCREEN_FRAMES = list(range(0, 96, 8))  # one a second: the keyframes


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """12 s at 8 fps, a keyframe a second (as camera chips encode); the plan at 4 a second is
    every other frame."""
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", n_frames=96, fps=8, gop=8)


def load(path, scores, screen=Screen(), config=CONFIG):
    detector = IndexScoringDetector(scores)
    with FrameLoader(config, detector=detector, screen=screen) as loader:
        return loader.load(path), detector


def by_size(detector):
    """The indices the detector was shown, by the input size it was asked to score them at."""
    seen = {}
    for call, indices in zip(detector.calls, detector.indices_seen()):
        seen.setdefault(call["image_height"], []).extend(indices)
    return seen


def test_a_clip_with_nothing_on_its_screen_frames_is_decided_by_the_detector(clip):
    loaded, detector = load(clip, {})
    assert loaded.decided_by == DECIDED_BY_DETECTOR and loaded.frames.shape[0] == 0 and loaded.source_indices == []
    # One frame a second was looked at, at the screen's input: nothing else was decoded for it.
    assert by_size(detector) == {320: SCREEN_FRAMES}
    assert [number for number, _, _ in loaded.detections] == SCREEN_FRAMES
    assert [time for _, time, _ in loaded.detections] == [i / 8 for i in SCREEN_FRAMES]


def test_where_the_screen_hits_the_frames_near_it_are_scored_as_exact_mode_scores_them(clip):
    scores = {40: 0.9, 42: 0.8, 44: 0.7, 46: 0.3, 48: 0.6}  # an animal from 5 s to 6 s
    fast, detector = load(clip, scores)
    exact, _ = load(clip, scores, screen=None)
    assert fast.decided_by == DECIDED_BY_CLASSIFIER and exact.decided_by is None
    assert fast.source_indices == exact.source_indices == [40, 42, 44, 48]
    assert np.array_equal(fast.frames, exact.frames) and fast.scores == exact.scores
    # The hits at 5 s and 6 s: the planned frames from 4 s to 7 s at the full input, 13 of 48.
    assert by_size(detector) == {320: SCREEN_FRAMES, 640: list(range(32, 57, 2))}
    # The outputs' frames: those scored at the full input, and the other screen frames.
    assert [n for n, _, _ in fast.detections] == sorted({*SCREEN_FRAMES, *range(32, 57, 2)})


def test_frames_chosen_to_fill_the_count_are_read_for_the_classifier_without_being_scored(clip):
    fast, detector = load(clip, {40: 0.9})
    exact, _ = load(clip, {40: 0.9}, screen=None)
    # One frame above the confidence; zamba's score_sorted fills with the earliest (all score 0).
    assert fast.source_indices == exact.source_indices == [0, 2, 4, 40]
    assert read_indices(fast.frames) == [0, 2, 4, 40] and np.array_equal(fast.frames, exact.frames)
    assert by_size(detector)[640] == list(range(32, 49, 2))


@pytest.mark.parametrize("score, decided_by", [(0.1, DECIDED_BY_CLASSIFIER), (0.09, DECIDED_BY_DETECTOR)])
def test_a_screen_frame_at_the_threshold_sends_the_clip_on(clip, score, decided_by):
    loaded, _ = load(clip, {48: score})
    assert loaded.decided_by == decided_by


def test_an_animal_seen_only_between_screen_frames_goes_unseen(clip):
    """The cost fast mode pays, which its benchmark measures on a real mix of clips: an animal in
    view for less than the screen's second may fall between two of its frames."""
    loaded, _ = load(clip, {42: 0.9, 44: 0.9})
    exact, _ = load(clip, {42: 0.9, 44: 0.9}, screen=None)
    assert loaded.decided_by == DECIDED_BY_DETECTOR and exact.source_indices[-2:] == [42, 44]


def test_an_mjpeg_clip_is_screened_from_frames_decoded_at_a_quarter_of_their_size(tmp_path):
    clip = make_clip(tmp_path / "big.avi", n_frames=8, fps=4, codec="mjpeg", size=(720, 1280))
    loaded, detector = load(clip, {})
    assert loaded.decided_by == DECIDED_BY_DETECTOR
    assert detector.calls[0]["sizes"] == [(180, 320), (180, 320)]  # frames 0 and 4, 1280x720 decoded at 320x180
    assert read_indices(np.stack(detector.calls[0]["fitted"])) == [0, 4]


def test_photos_and_configs_without_the_detector_are_read_as_in_exact_mode(tmp_path, clip):
    photo = tmp_path / "photo.png"
    Image.fromarray(index_frame(7)).save(photo)
    loaded, detector = load(photo, {7: 0.9})
    assert loaded.decided_by is None and by_size(detector) == {640: [7]}
    without = VideoLoaderConfig(fps=4, total_frames=4)
    with FrameLoader(without, screen=Screen()) as loader:
        assert loader.screen is None and loader.load(clip).decided_by is None


def test_with_no_count_to_fill_a_clip_the_screen_sent_on_with_nothing_above_the_confidence_is_exact_modes(clip):
    """Neither n_frames nor total_frames: only frames above the confidence are kept; none here,
    so the clip has no frames, which exact mode reports (the task makes it a failure record)."""
    config = VideoLoaderConfig(fps=4, megadetector_lite_config={})
    fast, _ = load(clip, {48: 0.2}, config=config)
    exact, _ = load(clip, {48: 0.2}, config=config, screen=None)
    assert fast.decided_by is None and fast.source_indices == exact.source_indices == []
    assert any("no frame was selected" in note for note in fast.warnings)
