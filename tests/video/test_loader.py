"""load_video_frames on synthetic clips whose frames show their own index."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest

from kifaru import load_video, load_video_frames
from kifaru.config import VideoLoaderConfig
from kifaru.exceptions import ConfigError
from kifaru.video.loader import FrameLoader
from kifaru.video.selection import resample_to_fps
from tests.media import BAND_ROWS, index_frame, make_clip, read_indices


@pytest.fixture(scope="module")
def clip_30fps(tmp_path_factory):
    """4 s at 30 fps (120 frames), h264 with B-frames and a keyframe every 30 frames."""
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", n_frames=120, fps=30, gop=30)


def ffmpeg_fps_plan(n: int, fps_in: int, fps_out: float) -> list[int]:
    return resample_to_fps([Fraction(i, fps_in) for i in range(n)], Fraction(n, fps_in), fps_out)


def test_default_config_returns_every_frame_in_order(clip_30fps):
    frames = load_video_frames(clip_30fps)
    assert frames.shape == (120, 64, 96, 3) and frames.dtype == np.uint8
    assert read_indices(frames) == list(range(120))


@pytest.mark.parametrize("fps", [4, 1, 0.5, 7.5, 45])
def test_fps_selects_the_ffmpeg_frames(clip_30fps, fps):
    frames = load_video_frames(clip_30fps, fps=fps, ensure_total_frames=False)
    expected = ffmpeg_fps_plan(120, 30, fps)
    assert len(frames) == math.ceil(4 * fps)
    assert read_indices(frames) == expected


def test_fps_with_total_frames_keeps_the_first_ones(clip_30fps):
    frames = load_video_frames(clip_30fps, fps=4, total_frames=5)
    assert read_indices(frames) == ffmpeg_fps_plan(120, 30, 4)[:5]


def test_evenly_sample_total_frames(clip_30fps):
    frames = load_video_frames(clip_30fps, total_frames=8, evenly_sample_total_frames=True)
    assert read_indices(frames) == [0, 15, 30, 45, 60, 75, 90, 105]


def test_early_bias_on_a_long_enough_clip(tmp_path):
    clip = make_clip(tmp_path / "long.mp4", n_frames=210, fps=30, gop=60)  # 7 s
    frames = load_video_frames(clip, early_bias=True)
    at_24 = ffmpeg_fps_plan(210, 30, 24)
    expected = [at_24[i] for i in (2, 8, 12, 18, 24, 36, 48, 60, 72, 84, 96, 108, 120, 132, 144, 156)]
    assert read_indices(frames) == expected


def test_early_bias_on_a_short_clip_repeats_the_last_frame(clip_30fps):
    frames = load_video_frames(clip_30fps, early_bias=True)  # 4 s: 96 frames at 24 fps, 10 picks
    indices = read_indices(frames)
    assert len(indices) == 16
    assert indices[10:] == [indices[9]] * 6 and len(set(indices)) == 10


def test_frame_indices(clip_30fps):
    assert read_indices(load_video_frames(clip_30fps, frame_indices=[5, 0, 119, 300])) == [0, 5, 119]


def test_frame_indices_after_fps(clip_30fps):
    frames = load_video_frames(clip_30fps, fps=10, frame_indices=[0, 1, 2])
    assert read_indices(frames) == [0, 3, 6]


def test_i_frames_returns_each_keyframe_once(clip_30fps):
    frames = load_video_frames(clip_30fps, i_frames=True)
    assert read_indices(frames) == [0, 30, 60, 90]


def test_scene_threshold_returns_each_cut_once(tmp_path):
    # Three steady shots; cuts at frames 10 and 20.
    shots = [np.full((64, 96, 3), value, np.uint8) for value in (20, 130, 240)]
    clip = make_clip(tmp_path / "cuts.mp4", frames=[shots[i // 10] for i in range(30)], fps=10)
    loaded = load_video(clip, scene_threshold=0.3)
    assert loaded.source_indices == [10, 20]
    assert abs(int(loaded.frames[0].mean()) - 130) <= 3 and abs(int(loaded.frames[1].mean()) - 240) <= 3


def test_crop_bottom_pixels_removes_the_bar(clip_30fps):
    full = load_video_frames(clip_30fps, frame_indices=[3])
    cropped = load_video_frames(clip_30fps, frame_indices=[3], crop_bottom_pixels=BAND_ROWS)
    assert cropped.shape == (1, 64 - BAND_ROWS, 96, 3)
    assert full[0, -1, 48, 2] > 200 and full[0, -1, 48, 0] < 60  # the blue bar is there...
    assert cropped[0, -1, :, 2].mean() < 200 or cropped[0, -1, :, 0].mean() > 60  # ...and gone
    np.testing.assert_array_equal(cropped[0], full[0, :-BAND_ROWS])


def test_model_input_resize_shrinks_with_area_and_enlarges_bilinear(clip_30fps):
    small = load_video_frames(clip_30fps, frame_indices=[7], model_input_height=32, model_input_width=48)
    large = load_video_frames(clip_30fps, frame_indices=[7], model_input_height=128, model_input_width=192)
    assert small.shape == (1, 32, 48, 3) and large.shape == (1, 128, 192, 3)
    assert read_indices(small) == [7] == read_indices(large)


def test_frame_selection_size_is_applied_before_model_input(clip_30fps):
    loaded = load_video_frames(clip_30fps, frame_indices=[9], frame_selection_height=40, frame_selection_width=60)
    assert loaded.shape == (1, 40, 60, 3)
    assert read_indices(loaded) == [9]


def test_ensure_total_frames_pads_and_can_be_turned_off(clip_30fps):
    padded = load_video_frames(clip_30fps, frame_indices=[1, 2], ensure_total_frames=True, fps=30)
    assert len(padded) == 2  # no total_frames: nothing to ensure
    frames = load_video_frames(clip_30fps, fps=1, total_frames=6)
    assert read_indices(frames) == [0, 30, 60, 90, 90, 90]
    frames = load_video_frames(clip_30fps, fps=1, total_frames=6, ensure_total_frames=False)
    assert read_indices(frames) == [0, 30, 60, 90]


def test_no_frame_selected_gives_zeros_of_the_requested_shape(clip_30fps):
    with pytest.warns(UserWarning, match="no frame was selected"):
        frames = load_video_frames(
            clip_30fps, fps=4, frame_indices=[500], model_input_height=20, model_input_width=30
        )
    assert frames.shape == (0, 20, 30, 3)
    with pytest.warns(UserWarning, match="no frame was selected"):
        frames = load_video_frames(clip_30fps, scene_threshold=0.9, total_frames=3)
    assert frames.shape == (3, 64, 96, 3) and frames.dtype == np.uint8 and not frames.any()


def test_bgr24_reverses_the_channels(clip_30fps):
    rgb = load_video_frames(clip_30fps, frame_indices=[0])
    bgr = load_video_frames(clip_30fps, frame_indices=[0], pix_fmt="bgr24")
    np.testing.assert_array_equal(bgr, rgb[..., ::-1])
    assert rgb[0, 2, 2, 0] > 200 and rgb[0, 2, 2, 2] < 60  # red corner in RGB order


def test_the_callers_config_is_never_changed(clip_30fps):
    config = VideoLoaderConfig(total_frames=4, evenly_sample_total_frames=True)
    before = config.model_dump()
    load_video_frames(clip_30fps, config=config)
    assert config.model_dump() == before
    config = VideoLoaderConfig(early_bias=True)
    load_video_frames(clip_30fps, config=config)
    assert config.fps is None and config.frame_indices is None and config.total_frames is None


def test_bad_keyword_is_a_config_error(clip_30fps):
    with pytest.raises(ConfigError, match="did you mean 'fps'"):
        load_video_frames(clip_30fps, fsp=4)


def test_variable_frame_rate_is_resampled_by_timestamps(tmp_path):
    # Frames at 0, 0.1, 0.2, then a 1 s gap (a camera pausing), then 1.3, 1.4.
    times = [0.0, 0.1, 0.2, 1.2, 1.3, 1.4]
    clip = make_clip(tmp_path / "vfr.mkv", n_frames=6, fps=10, times=times)
    frames = load_video_frames(clip, fps=5, ensure_total_frames=False)
    # Slots every 0.2 s: 0, 0.2, 0.4, ..., 1.4: frame 2 fills the gap until frame 3 at 1.2 s.
    assert read_indices(frames) == [0, 2, 2, 2, 2, 2, 3, 5]


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_is_honoured(tmp_path, rotation):
    clip = make_clip(tmp_path / f"rot{rotation}.mp4", n_frames=3, fps=10, rotation=rotation)
    frames = load_video_frames(clip, frame_indices=[0])
    upright = index_frame(0)
    expected = np.rot90(upright, rotation // 90)
    assert frames.shape[1:3] == expected.shape[:2]
    red = np.argwhere((expected[..., 0] > 200) & (expected[..., 1] < 60))
    corner = tuple(red.mean(axis=0).round().astype(int))
    assert frames[0][corner][0] > 200 and frames[0][corner][1] < 60


def test_mjpeg_decodes_only_the_frames_asked_for(tmp_path):
    from kifaru.video.decode import PyAVVideoSource

    clip = make_clip(tmp_path / "trail.AVI", n_frames=40, fps=10, codec="mjpeg")
    source = PyAVVideoSource(clip)
    assert source.intra_only
    assert source.positions_to_decode([3, 20]) == [3, 20]
    assert read_indices(load_video_frames(clip, frame_indices=[3, 20])) == [3, 20]


def test_inter_coded_stream_decodes_from_keyframe_to_last_needed_frame(clip_30fps):
    from kifaru.video.decode import PyAVVideoSource

    source = PyAVVideoSource(clip_30fps)
    positions = source.positions_to_decode([35, 40])
    assert positions[0] == 30  # the keyframe before them
    assert len(positions) < 20  # not the rest of the clip
    assert read_indices(load_video_frames(clip_30fps, frame_indices=[35, 40])) == [35, 40]


def test_seeking_over_long_gaps_gives_the_same_frames(tmp_path):
    from kifaru.video.decode import PyAVVideoSource

    clip = make_clip(tmp_path / "sparse.mp4", n_frames=200, fps=25, gop=25)
    wanted = [5, 80, 181]
    linear = PyAVVideoSource(clip)
    seeking = PyAVVideoSource(clip)
    seeking.seek_gap_bytes = 0  # seek whenever there is a gap
    by_linear = {f.index: read_indices(f.to_rgb()[None])[0] for f in linear.decode(wanted)}
    by_seeking = {f.index: read_indices(f.to_rgb()[None])[0] for f in seeking.decode(wanted)}
    assert by_linear == by_seeking == {i: i for i in wanted}


def test_reduced_resolution_decoding_matches_full_size_closely(tmp_path):
    from kifaru.video.decode import PyAVVideoSource

    clip = make_clip(tmp_path / "big.avi", n_frames=5, fps=10, codec="mjpeg", size=(256, 384))
    loader = FrameLoader(VideoLoaderConfig(model_input_height=64, model_input_width=96))
    crop, factor = loader._frame_geometry(PyAVVideoSource(clip))
    assert factor == 4
    reduced = loader.load(clip).frames
    full = load_video_frames(clip, frame_selection_height=256, frame_selection_width=384, model_input_height=64, model_input_width=96)
    assert reduced.shape == full.shape == (5, 64, 96, 3)
    assert np.abs(reduced.astype(int) - full.astype(int)).mean() < 4
    assert read_indices(reduced) == list(range(5))


def test_still_image_is_one_repeated_rgb_frame(tmp_path):
    from PIL import Image
    from skimage import data

    cat = data.chelsea()
    path = tmp_path / "Cat Photo.JPG"
    Image.fromarray(cat).save(path, quality=95)
    frames = load_video_frames(path, total_frames=4)
    assert frames.shape == (4, *cat.shape)
    assert np.abs(frames[0].astype(int) - cat.astype(int)).mean() < 4  # RGB, not BGR
    assert all((frame == frames[0]).all() for frame in frames)
    resized = load_video_frames(path, model_input_height=60, model_input_width=90)
    assert resized.shape == (1, 60, 90, 3)


def test_cache_serves_second_load_and_not_a_changed_file(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", n_frames=20, fps=10)
    config = VideoLoaderConfig(fps=5, cache_dir=tmp_path / "cache")
    first = load_video(clip, config)
    second = load_video(clip, config)
    assert not first.from_cache and second.from_cache
    np.testing.assert_array_equal(first.frames, second.frames)
    entries = list((tmp_path / "cache").rglob("*.npz"))
    assert len(entries) == 1 and not list((tmp_path / "cache").rglob(".partial-*"))
    # Same path, new content: the old entry must not be served.
    make_clip(clip, frames=[index_frame(i + 100) for i in range(20)], fps=10)
    third = load_video(clip, config)
    assert not third.from_cache and read_indices(third.frames)[0] == 100


def test_cache_from_environment_and_cleanup(tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "clip.mp4", n_frames=10, fps=10)
    cache = tmp_path / "env-cache"
    monkeypatch.setenv("VIDEO_CACHE_DIR", str(cache))
    load_video_frames(clip)
    assert len(list(cache.rglob("*.npz"))) == 1
    for off in ("", "0"):
        monkeypatch.setenv("VIDEO_CACHE_DIR", off)
        assert FrameLoader(VideoLoaderConfig()).cache is None
    with FrameLoader(VideoLoaderConfig(cache_dir=cache, cleanup_cache=True, fps=2)) as loader:
        loader.load(clip)
        assert len(list(cache.rglob("*.npz"))) == 2
    assert len(list(cache.rglob("*.npz"))) == 1  # only this config's entries are removed
    assert cache.is_dir()


def test_config_hash_ignores_cache_fields_only():
    from kifaru.video.cache import config_hash

    base = VideoLoaderConfig(fps=4)
    assert config_hash(base) == config_hash(base.model_copy(update={"cache_dir": "/x", "cleanup_cache": True}))
    assert config_hash(base) != config_hash(VideoLoaderConfig(fps=5))


def test_load_video_reports_source_frames_and_times(clip_30fps):
    loaded = load_video(clip_30fps, fps=2, total_frames=3)
    assert loaded.source_indices == [0, 15, 30]
    assert loaded.times == pytest.approx([0.0, 0.5, 1.0])
    assert loaded.info.frame_count == 120 and loaded.info.codec == "h264"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_video(clip_30fps, fps=2)  # a clean file warns about nothing


def test_clip_whose_first_stream_is_audio(tmp_path):
    from tests.media import make_clip_with_audio

    clip = make_clip_with_audio(tmp_path / "with sound.mkv", n_frames=20, fps=10)
    assert read_indices(load_video_frames(clip, fps=5, ensure_total_frames=False)) == list(range(0, 20, 2))


def test_video_starting_after_the_audio_is_timed_from_the_container_start(tmp_path):
    from tests.media import make_clip_with_audio

    clip = make_clip_with_audio(tmp_path / "late video.mkv", n_frames=20, fps=10, video_start=0.5)
    loaded = load_video(clip, fps=2, ensure_total_frames=False)
    assert loaded.times[0] == pytest.approx(0.5, abs=0.03)
    # Slots at 0 and 0.5 s show the first frame (ffmpeg's constant-rate output), then one a 0.5 s.
    assert read_indices(loaded.frames) == [0, 0, 5, 10, 15]


def test_frame_indices_of_a_video_starting_late_count_from_its_first_frame(tmp_path):
    """zamba's ffmpeg writes frame_indices picks as they come (vsync 0), without the constant-rate
    padding from the container's start that fps alone gets: index 0 is the video's first frame,
    shown at 0.5 s, not a copy of it at 0 s."""
    from tests.media import make_clip_with_audio

    clip = make_clip_with_audio(tmp_path / "late video.mkv", n_frames=20, fps=10, video_start=0.5)
    loaded = load_video(clip, fps=2, frame_indices=[0, 1, 2, 40], ensure_total_frames=False)
    assert loaded.source_indices == read_indices(loaded.frames) == [0, 5, 10]
    assert loaded.times == [0.5, 1.0, 1.5]  # (Matroska times are whole milliseconds)


# -- thumbnails (what a contact sheet shows) ------------------------------------------------------


def _thumbnails(clip, max_count=64, max_width=320, detector=None, **fields):
    with FrameLoader(VideoLoaderConfig(**fields), detector=detector) as loader:
        return loader.load_thumbnails(clip, max_count, max_width)


def _tiles_from_the_full_frames(clip, max_count=64, max_width=320, detector=None, **fields):
    from kifaru.video import Thumbnails

    config = VideoLoaderConfig(**fields)
    with FrameLoader(config, detector=detector) as loader:
        return Thumbnails.of(loader.load(clip), config.pix_fmt, max_count, max_width)


def test_thumbnails_are_an_even_choice_of_the_selected_frames(clip_30fps):
    from kifaru.video.sheet import evenly_chosen

    thumbnails = _thumbnails(clip_30fps, max_count=10)
    assert thumbnails.source_indices == list(range(120)) and thumbnails.selected_count == 120
    assert thumbnails.frame_shape == (64, 96, 3)
    assert thumbnails.tile_positions == evenly_chosen(120, 10) == [0, 13, 26, 40, 53, 66, 79, 93, 106, 119]
    assert read_indices(np.stack(thumbnails.tiles)) == thumbnails.tile_positions
    full = _tiles_from_the_full_frames(clip_30fps, max_count=10)
    assert full.tile_positions == thumbnails.tile_positions
    assert all(np.array_equal(a, b) for a, b in zip(full.tiles, thumbnails.tiles))


def test_thumbnails_convert_only_the_chosen_frames(clip_30fps, monkeypatch):
    from kifaru.video.decode import DecodedFrame

    converted = []
    to_rgb = DecodedFrame.to_rgb
    monkeypatch.setattr(DecodedFrame, "to_rgb", lambda self: converted.append(self.index) or to_rgb(self))
    thumbnails = _thumbnails(clip_30fps, max_count=10)
    # The other 110 frames are decoded (so that a clip cut short is noticed) but never kept.
    assert sorted(converted) == thumbnails.tile_positions


def test_thumbnails_are_shrunk_to_the_width(clip_30fps):
    thumbnails = _thumbnails(clip_30fps, max_width=48, fps=2, model_input_height=100, model_input_width=150)
    assert thumbnails.frame_shape == (100, 150, 3)
    assert {tile.shape for tile in thumbnails.tiles} == {(32, 48, 3)}
    assert read_indices(np.stack(thumbnails.tiles)) == [0, 15, 30, 45, 60, 75, 90, 105]


def test_thumbnails_are_rgb_whatever_the_pix_fmt(clip_30fps):
    tile = _thumbnails(clip_30fps, max_count=1, pix_fmt="bgr24").tiles[0]
    assert tile[2, 2, 0] > 200 and tile[2, 2, 2] < 60  # the red corner, in RGB order


def test_thumbnails_with_the_detector_are_those_of_its_frames(clip_30fps):
    from tests.detection.fakes import IndexScoringDetector

    fields = {"megadetector_lite_config": {"n_frames": 6}}
    scores = {3: 0.9, 50: 0.5, 100: 0.8}
    thumbnails = _thumbnails(clip_30fps, 4, detector=IndexScoringDetector(scores), **fields)
    full = _tiles_from_the_full_frames(clip_30fps, 4, detector=IndexScoringDetector(scores), **fields)
    assert thumbnails.source_indices == full.source_indices and thumbnails.scores == full.scores
    assert thumbnails.tile_positions == [0, 2, 3, 5]
    assert all(np.array_equal(a, b) for a, b in zip(full.tiles, thumbnails.tiles))


def test_thumbnails_of_frames_of_zeros(clip_30fps):
    with pytest.warns(UserWarning, match="no frame was selected"):
        thumbnails = _thumbnails(clip_30fps, scene_threshold=0.9, total_frames=3)
    assert thumbnails.source_indices == [-1, -1, -1] and thumbnails.frame_shape == (64, 96, 3)
    assert len(thumbnails.tiles) == 3 and not np.stack(thumbnails.tiles).any()
    with pytest.warns(UserWarning, match="no frame was selected"):
        assert _thumbnails(clip_30fps, frame_indices=[500]).tiles == []


def test_estimated_shape_is_the_loaded_one(clip_30fps):
    for fields in ({}, {"fps": 4}, {"fps": 2, "total_frames": 20}, {"crop_bottom_pixels": 8, "fps": 1}):
        with FrameLoader(VideoLoaderConfig(**fields)) as loader:
            assert loader.estimated_shape(clip_30fps) == loader.load(clip_30fps).frames.shape, fields
