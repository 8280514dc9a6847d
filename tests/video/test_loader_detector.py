"""Frame loading with MegadetectorLite, on synthetic clips and a stand-in detector whose score for
a frame is looked up from the index the frame shows (so every step can be checked exactly)."""

from __future__ import annotations

import pytest

from kifaru import FrameSelectionWarning
from kifaru.config import VideoLoaderConfig
from kifaru.video.loader import KEPT_BOX_THRESHOLD, NO_FRAME, FrameLoader
from kifaru.video.selection import select_by_scores
from tests.detection.fakes import IndexScoringDetector
from tests.media import BAND_ROWS, index_frame, make_clip, read_indices


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """3 s at 10 fps: 30 frames of 64 x 96 showing their index."""
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", n_frames=30, fps=10)


def _load(clip, detector, **fields):
    with FrameLoader(VideoLoaderConfig(**fields), detector=detector) as loader:
        return loader.load(clip)


def test_frames_above_the_threshold_are_kept_best_first_then_filled(clip):
    detector = IndexScoringDetector({3: 0.9, 10: 0.5, 20: 0.8, 25: 0.25, 27: 0.2})
    loaded = _load(clip, detector, megadetector_lite_config={"n_frames": 5})
    # Above 0.25: 3, 20, 10; score_sorted fills with the next best, 25 (at the confidence itself:
    # the detector keeps its box, zamba ranks only frames above it), then the earliest 0 (frame 0).
    # Frame 27's box (0.2, below the confidence) counts for nothing in the selection, as in zamba.
    assert loaded.source_indices == [0, 3, 10, 20, 25]
    assert read_indices(loaded.frames) == [0, 3, 10, 20, 25]
    assert loaded.scores == [0.0, 0.9, 0.5, 0.8, 0.25]
    # All 30 frames scored, in batches of frame_batch_size (24) while decoding goes on.
    assert [len(call["fitted"]) for call in detector.calls] == [24, 6]
    # ... but its box is kept for the outputs, down to KEPT_BOX_THRESHOLD.
    assert {call["confidence"] for call in detector.calls} == {KEPT_BOX_THRESHOLD}
    found = {number: d.scores.tolist() for number, _, d in loaded.detections}
    assert sorted(found) == list(range(30))
    assert found[27] == [0.2] and found[3] == [0.9] and found[1] == []


def test_the_scored_frames_come_back_from_the_frame_cache(clip, tmp_path):
    fields = dict(megadetector_lite_config={"n_frames": 3}, cache_dir=tmp_path / "cache")
    first = _load(clip, IndexScoringDetector({3: 0.9, 27: 0.2}), **fields)
    again = _load(clip, IndexScoringDetector({}), **fields)
    assert again.from_cache
    assert [(n, t) for n, t, _ in again.detections] == [(n, t) for n, t, _ in first.detections]
    assert [d.scores.tolist() for _, _, d in again.detections] == [d.scores.tolist() for _, _, d in first.detections]
    assert [d.boxes.tolist() for _, _, d in again.detections] == [d.boxes.tolist() for _, _, d in first.detections]


def test_detector_gets_each_frame_fitted_to_its_input_size_after_the_crop(clip):
    detector = IndexScoringDetector({})
    _load(
        clip,
        detector,
        crop_bottom_pixels=BAND_ROWS,
        megadetector_lite_config={"n_frames": 2, "image_width": 320, "image_height": 256, "frame_batch_size": 7},
    )
    call = detector.calls[0]
    assert {size for size in call["sizes"]} == {(64 - BAND_ROWS, 96)}
    # 96 x 56 fits 320 x 256 at 320 x 187 (aspect kept, PIL's rounding).
    assert {image.shape for image in call["fitted"]} == {(187, 320, 3)}
    assert (call["image_height"], call["image_width"], call["batch_size"]) == (256, 320, 7)
    # The timestamp bar was cropped before fitting: no blue at the bottom.
    assert all(image[-2:, :, 2].mean() < 200 or image[-2:, :, 0].mean() > 100 for image in call["fitted"])


def test_model_frames_are_resized_from_the_full_frame_not_the_detector_copy(clip):
    loaded = _load(
        clip,
        IndexScoringDetector({7: 0.9}),
        model_input_height=32,
        model_input_width=48,
        megadetector_lite_config={"n_frames": 1},
    )
    assert loaded.frames.shape == (1, 32, 48, 3)
    assert read_indices(loaded.frames) == [7]


def test_upsampled_duplicates_are_scored_once_and_selected_as_zamba_would(clip):
    detector = IndexScoringDetector({4: 0.7, 5: 0.6})
    loaded = _load(clip, detector, fps=20, megadetector_lite_config={"n_frames": 3})
    # 20 fps doubles every frame: 60 candidates, 30 distinct frames scored.
    assert sum(len(call["fitted"]) for call in detector.calls) == 30
    scores = [{4: 0.7, 5: 0.6}.get(i // 2, 0.0) for i in range(60)]
    expected, _ = select_by_scores(scores, confidence=0.25, n_frames=3, fill_mode="score_sorted")
    assert loaded.source_indices == [i // 2 for i in expected] == [4, 4, 5]


def test_total_frames_fills_n_frames_and_ensure_pads_short_selections(clip):
    loaded = _load(clip, IndexScoringDetector({12: 0.9}), total_frames=4, megadetector_lite_config={})
    assert loaded.source_indices == [0, 1, 2, 12]
    # weighted_prob: the other frames all score 0, so zamba draws them uniformly.
    loaded = _load(clip, IndexScoringDetector({12: 0.9}), total_frames=4, megadetector_lite_config={"fill_mode": "weighted_prob"})
    assert 12 in loaded.source_indices and len(set(loaded.source_indices)) == 4
    # ... and with nothing above the threshold it keeps nothing: ensure_total_frames gives zeros.
    with pytest.warns(UserWarning, match="no frame was selected"):
        loaded = _load(clip, IndexScoringDetector({12: 0.1}), total_frames=4, megadetector_lite_config={"fill_mode": "weighted_prob"})
    assert loaded.source_indices == [NO_FRAME] * 4 and not loaded.frames.any()


def test_repeat_with_nothing_above_falls_back_with_a_warning(clip):
    with pytest.warns(FrameSelectionWarning, match="score_sorted"):
        loaded = _load(clip, IndexScoringDetector({5: 0.25}), megadetector_lite_config={"n_frames": 3, "fill_mode": "repeat"})
    assert loaded.source_indices == [0, 1, 5]
    assert any("score_sorted" in note for note in loaded.warnings)


def test_sort_by_time_false_returns_frames_in_score_order(clip):
    loaded = _load(
        clip, IndexScoringDetector({3: 0.4, 9: 0.9, 15: 0.6}), megadetector_lite_config={"n_frames": 3, "sort_by_time": False}
    )
    assert loaded.source_indices == [9, 15, 3]


def test_results_are_cached_with_their_scores(clip, tmp_path):
    config = VideoLoaderConfig(cache_dir=tmp_path, megadetector_lite_config={"n_frames": 2})
    detector = IndexScoringDetector({2: 0.9, 8: 0.8})
    first = FrameLoader(config, detector=detector).load(clip)
    calls = len(detector.calls)
    second = FrameLoader(config, detector=detector).load(clip)
    assert second.from_cache and len(detector.calls) == calls
    assert second.source_indices == first.source_indices == [2, 8]
    assert second.scores == first.scores == [0.9, 0.8]


def test_still_images_are_repeated_and_scored_once_for_their_boxes(tmp_path):
    """A photo has one frame: nothing to choose, it is repeated as a clip would be; the detector
    scores it once, for the boxes the outputs give (MegaDetector JSON), not to select."""
    from PIL import Image

    path = tmp_path / "photo.jpg"
    Image.fromarray(index_frame(9)).save(path)
    detector = IndexScoringDetector({9: 0.7})
    loaded = _load(path, detector, total_frames=3, megadetector_lite_config={})
    assert read_indices(loaded.frames) == [9, 9, 9] and loaded.scores is None
    assert detector.indices_seen() == [[9]]
    ((number, _, found),) = loaded.detections
    assert number == 0 and found.scores.tolist() == [0.7]


def test_the_real_detector_is_loaded_only_when_a_clip_needs_it_and_once(monkeypatch, tmp_path):
    import kifaru.detection.megadetector_lite as module

    loads = []
    detector = IndexScoringDetector({3: 0.9})
    monkeypatch.setattr(module, "load_megadetector_lite", lambda **kwargs: loads.append(kwargs) or detector)
    loader = FrameLoader(VideoLoaderConfig(total_frames=2, megadetector_lite_config={"n_frames": 2, "device": "cpu"}))
    assert loads == []  # no clip yet: nothing is loaded
    clips = [make_clip(tmp_path / f"{k}.mp4", n_frames=6) for k in range(2)]
    assert [read_indices(loader.load(clip).frames) for clip in clips] == [[0, 3], [0, 3]]  # 3 scores
    assert loads == [{"device": "cpu"}] and len(detector.calls) == 2  # loaded once, for both clips
