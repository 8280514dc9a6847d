"""The real camera-trap clips in ../shared/data (skipped when absent)."""

from __future__ import annotations

import numpy as np
import pytest

from kifaru import find_media, load_video_frames


def real_clips(shared_data):
    return sorted(find_media(shared_data / "zamba-test-assets" / "videos", images=False))


def test_all_19_tiny_clips_load(shared_data):
    clips = real_clips(shared_data)
    assert len(clips) == 19
    for clip in clips:
        frames = load_video_frames(clip, fps=1, total_frames=4, model_input_height=60, model_input_width=80)
        assert frames.shape == (4, 60, 80, 3), clip
        assert frames.std() > 1, clip  # real pictures, not zeros


def test_folder_named_like_a_video_is_not_a_clip(shared_data):
    folder = shared_data / "zamba-test-assets" / "videos" / "data" / "raw" / "chimpandsee" / "Trip_5" / "card 1.2_location"
    if not folder.exists():
        pytest.skip("that folder is not in this copy of the data")
    assert folder not in real_clips(shared_data)


def test_real_trail_camera_clip_default_time_distributed_loading(shared_data):
    clip = shared_data / "real-videos" / "chimps_pool_320x180_30fps_15s.mp4"
    frames = load_video_frames(
        clip, crop_bottom_pixels=50, fps=4, total_frames=16, model_input_height=240, model_input_width=426
    )
    assert frames.shape == (16, 240, 426, 3) and frames.dtype == np.uint8
    assert len({frame.tobytes() for frame in frames}) > 8  # the chimps move


def test_dog_photo_loads_as_rgb(shared_data):
    """A photo is one frame, repeated to total_frames, with the pixels PIL decodes (bit for bit,
    as measured), in RGB order (BGR would differ by 19 levels on average)."""
    from PIL import Image

    photo = shared_data / "zamba-test-assets" / "dog.jpg"
    frames = load_video_frames(photo, total_frames=2)
    assert frames.shape == (2, 576, 768, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0], np.asarray(Image.open(photo).convert("RGB")))
    np.testing.assert_array_equal(frames[1], frames[0])
