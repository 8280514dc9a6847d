"""Bad input: a typed error naming the file and the reason, or the frames that really exist."""

from __future__ import annotations

import os

import numpy as np
import pytest

from kifaru import load_video, load_video_frames
from kifaru.exceptions import (
    EmptyMediaError,
    MediaError,
    MediaNotFoundError,
    NotAVideoError,
    PartialDecodeWarning,
)
from tests.media import make_audio_only, make_clip, read_indices


def test_missing_file(tmp_path):
    with pytest.raises(MediaNotFoundError, match="nothere.mp4: file not found"):
        load_video_frames(tmp_path / "nothere.mp4")


def test_empty_file(tmp_path):
    (tmp_path / "empty.avi").write_bytes(b"")
    with pytest.raises(EmptyMediaError, match=r"empty.avi: file is empty \(0 bytes\)"):
        load_video_frames(tmp_path / "empty.avi")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(NotAVideoError, match="noise.mp4: cannot be opened as a video"):
        load_video_frames(path)


def test_text_file_named_like_a_video(tmp_path):
    path = tmp_path / "notes.MOV"
    path.write_text("field notes, not a video\n" * 50)
    with pytest.raises(NotAVideoError, match="notes.MOV"):
        load_video_frames(path)


def test_audio_only(tmp_path):
    path = make_audio_only(tmp_path / "birdsong.mp4")
    with pytest.raises(NotAVideoError, match=r"birdsong.mp4: has no video stream \(only audio\)"):
        load_video_frames(path)


def test_folder_named_like_a_video(tmp_path):
    (tmp_path / "card 1.2_location.avi").mkdir()
    with pytest.raises(NotAVideoError, match="is a folder"):
        load_video_frames(tmp_path / "card 1.2_location.avi")


def test_every_media_error_carries_path_and_reason(tmp_path):
    with pytest.raises(MediaError) as caught:
        load_video_frames(tmp_path / "x.mp4")
    assert caught.value.path.endswith("x.mp4") and caught.value.reason == "file not found"


@pytest.mark.parametrize("codec,suffix", [("mjpeg", ".avi"), ("mpeg4", ".avi"), ("libx264", ".mkv")])
def test_truncated_clip_gives_the_frames_it_has_with_a_warning(tmp_path, codec, suffix):
    whole = make_clip(tmp_path / f"whole{suffix}", n_frames=60, fps=10, codec=codec, gop=10)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.warns(PartialDecodeWarning, match="truncated"):
        loaded = load_video(cut, fps=10, ensure_total_frames=False)
    indices = read_indices(loaded.frames)
    assert 0 < len(indices) < 60
    assert indices == list(range(len(indices)))  # real frames, in order, none invented
    assert loaded.warnings


def test_truncated_clip_is_padded_only_from_real_frames(tmp_path):
    whole = make_clip(tmp_path / "whole.avi", n_frames=60, fps=10, codec="mjpeg")
    data = whole.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.warns(PartialDecodeWarning):
        loaded = load_video(cut, total_frames=16, evenly_sample_total_frames=True)
    indices = read_indices(loaded.frames)
    assert len(indices) == 16 and max(indices) < 20
    # Evenly sampled over the frames that exist, not over the duration the header promised.
    assert len(set(indices)) >= 12


def test_damaged_middle_is_reported(tmp_path):
    whole = make_clip(tmp_path / "whole.mp4", n_frames=60, fps=10, gop=10)
    data = bytearray(whole.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 400] = os.urandom(400)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with pytest.warns(PartialDecodeWarning, match="damaged.mp4"):
        frames = load_video_frames(damaged, ensure_total_frames=False)
    assert 0 < len(frames) <= 60
