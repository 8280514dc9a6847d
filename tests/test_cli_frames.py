"""``kifaru frames``: the frames a model would see, as an array and a contact sheet."""

from __future__ import annotations

import numpy as np
from PIL import Image

from kifaru.cli import main
from tests.media import make_clip, read_indices


def test_frames_writes_array_and_sheet(tmp_path, capsys):
    clip = make_clip(tmp_path / "clip.mp4", n_frames=30, fps=10)
    config = tmp_path / "config.yaml"
    config.write_text("video_loader_config:\n  fps: 2\n  total_frames: 4\n")
    out, sheet = tmp_path / "frames.npy", tmp_path / "sheet.png"
    code = main(["frames", str(clip), "--config", str(config), "--out", str(out), "--sheet", str(sheet), "-v"])
    assert code == 0
    frames = np.load(out)
    assert read_indices(frames) == [0, 5, 10, 15]
    with Image.open(sheet) as image:
        assert image.width >= 4 * 10 and image.height > frames.shape[1]
    printed = capsys.readouterr().out
    assert "selected 4 frames" in printed and "#3 src 15 t=1.50s" in printed


def test_command_line_value_overrides_the_file(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", n_frames=30, fps=10)
    config = tmp_path / "config.yaml"
    config.write_text("video_loader_config:\n  fps: 2\n  total_frames: 4\n")
    out = tmp_path / "frames.npy"
    assert main(["frames", str(clip), "--config", str(config), "--set", "total_frames=2", "--out", str(out)]) == 0
    assert read_indices(np.load(out)) == [0, 5]


def test_missing_video_exits_1_naming_it(tmp_path, capsys):
    assert main(["frames", str(tmp_path / "gone.mp4")]) == 1
    assert "gone.mp4: file not found" in capsys.readouterr().err


def test_bad_override_exits_2_with_a_suggestion(tmp_path, capsys):
    clip = make_clip(tmp_path / "clip.mp4", n_frames=3)
    assert main(["frames", str(clip), "--set", "crop_bottom_pixel=10"]) == 2
    assert "did you mean 'crop_bottom_pixels'" in capsys.readouterr().err
    assert main(["frames", str(clip), "--set", "fps"]) == 2


def test_partial_clip_warning_is_shown(tmp_path, capsys):
    whole = make_clip(tmp_path / "whole.avi", n_frames=40, fps=10, codec="mjpeg")
    data = whole.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    assert main(["frames", str(tmp_path / "cut.avi")]) == 0
    assert "warning:" in capsys.readouterr().err
