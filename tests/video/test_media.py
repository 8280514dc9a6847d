"""Every camera's files: containers, letter case, odd names, folder discovery."""

from __future__ import annotations

import pytest

from kifaru import find_media, load_video_frames
from tests.media import make_clip, read_indices

CONTAINERS = [
    ("libx264", ".mp4"),
    ("libx264", ".MOV"),
    ("mjpeg", ".AVI"),
    ("mpeg4", ".avi"),
    ("libx264", ".mkv"),
    ("libx264", ".m4v"),
    ("msmpeg4", ".asf"),
    ("wmv2", ".WMV"),
    ("mpeg2video", ".mts"),
    ("h263", ".3gp"),
    ("libvpx", ".webm"),
]


@pytest.mark.parametrize("codec,suffix", CONTAINERS)
def test_container_and_codec_loads_every_frame(tmp_path, codec, suffix):
    size = (96, 128) if codec == "h263" else (64, 96)  # h263 allows only a few sizes
    # 5 fps: frame times are exact in millisecond time bases (asf, mkv, webm) too.
    clip = make_clip(tmp_path / f"clip{suffix}", n_frames=10, fps=5, codec=codec, size=size)
    frames = load_video_frames(clip, fps=2.5, ensure_total_frames=False)
    assert read_indices(frames) == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("name", ["site A, cam 2 (2023).mp4", "Taï forest — ñandú 象.mp4", "a'b\"c.mp4"])
def test_names_with_spaces_commas_and_non_ascii(tmp_path, name):
    clip = make_clip(tmp_path / "Taï_T174" / name, n_frames=5, fps=5)
    assert read_indices(load_video_frames(clip)) == [0, 1, 2, 3, 4]


def test_discovery_skips_hidden_files_and_macos_companions(tmp_path):
    keep = [
        make_clip(tmp_path / "a.mp4", n_frames=2),
        make_clip(tmp_path / "sub dir" / "B.AVI", n_frames=2, codec="mjpeg"),
        make_clip(tmp_path / "card 1.2_location.avi" / "c.mkv", n_frames=2),
    ]
    (tmp_path / "._a.mp4").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (tmp_path / ".hidden.mp4").write_bytes(b"x")
    (tmp_path / ".Trashes").mkdir()
    make_clip(tmp_path / ".Trashes" / "old.mp4", n_frames=2)
    (tmp_path / "notes.txt").write_text("not media")
    (tmp_path / "photo.JPG").write_bytes(b"fake")
    found = list(find_media(tmp_path))
    assert sorted(found) == sorted(keep + [tmp_path / "photo.JPG"])
    assert tmp_path / "photo.JPG" not in list(find_media(tmp_path, images=False))
