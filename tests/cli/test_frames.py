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


# -- as a new user: only the required arguments ---------------------------------------------------


def test_frames_of_a_clip_as_a_new_user(new_user, capsys):
    clip = make_clip(new_user.work / "clip.mp4", n_frames=30, fps=10)
    assert main(["frames", str(clip)]) == 0
    out = capsys.readouterr().out
    assert f"{clip}: h264 96x64, 30 frames, 3.00 s" in out
    assert "selected 30 frames, array (30, 64, 96, 3) uint8 (rgb24)" in out
    assert sorted(p.name for p in new_user.work.iterdir()) == ["clip.mp4"]  # nothing written unasked


def test_sheet_of_a_long_clip_is_bounded_and_says_so(new_user, capsys):
    from kifaru.video.sheet import LABEL_HEIGHT, evenly_chosen

    clip = make_clip(new_user.work / "long.mp4", n_frames=100, fps=25, size=(360, 640))
    assert main(["frames", str(clip), "--sheet", "s.png"]) == 0
    out, err = capsys.readouterr()
    assert "sheet: 64 of 100 frames, evenly chosen, 320 px wide" in err
    assert "selected 100 frames, array (100, 360, 640, 3)" in out and "wrote s.png" in out
    with Image.open(new_user.work / "s.png") as image:
        sheet = np.asarray(image.convert("RGB"))
    # 64 tiles of 320x180 with a label row each: 11 columns (about 16:9), 6 rows.
    columns, tile_w, tile_h = 11, 320, 180
    assert sheet.shape == (6 * (tile_h + LABEL_HEIGHT), columns * tile_w, 3)
    tiles = [
        sheet[row * (tile_h + LABEL_HEIGHT) : row * (tile_h + LABEL_HEIGHT) + tile_h, col * tile_w : (col + 1) * tile_w]
        for row in range(6)
        for col in range(columns)
    ][:64]
    assert read_indices(np.stack(tiles)) == evenly_chosen(100, 64)
    assert not sheet[5 * (tile_h + LABEL_HEIGHT) :, 9 * tile_w :].any()  # the last row's 2 unused cells


def test_sheet_of_a_short_clip_is_the_one_drawn_from_all_its_frames(tmp_path, capsys):
    """Up to 64 frames, the sheet is what it was when drawn from the loaded array."""
    from kifaru.video import load_video
    from kifaru.video.sheet import contact_sheet

    clip = make_clip(tmp_path / "short.mp4", n_frames=20, fps=10, size=(360, 640))
    sheet = tmp_path / "s.png"
    assert main(["frames", str(clip), "--sheet", str(sheet)]) == 0
    assert "sheet: 20 frames, 320 px wide" in capsys.readouterr().err
    loaded = load_video(clip)
    labels = [f"#{i} src {s} t={t:.2f}s" for i, (s, t) in enumerate(zip(loaded.source_indices, loaded.times))]
    with Image.open(sheet) as image:
        assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(contact_sheet(loaded.frames, labels)))


def test_frames_of_a_photo_says_it_is_a_photo(tmp_path, capsys):
    from tests.media import index_frame

    photo = tmp_path / "photo.jpg"
    Image.fromarray(index_frame(5, 48, 80)).save(photo)
    assert main(["frames", str(photo)]) == 0
    out = capsys.readouterr().out
    assert f"{photo}: photo 80x48\n" in out and " s\n" not in out
    assert "selected 1 frame, array (1, 48, 80, 3)" in out


def test_out_warns_before_building_a_large_array(tmp_path, capsys, monkeypatch):
    import kifaru.cli.commands.frames

    clip = make_clip(tmp_path / "clip.mp4", n_frames=30, fps=10)
    monkeypatch.setattr(kifaru.cli.commands.frames, "FRAMES_ARRAY_WARN_BYTES", 30 * 64 * 96 * 3 - 1)  # one byte under it
    assert main(["frames", str(clip), "--out", str(tmp_path / "f.npy")]) == 0
    err = capsys.readouterr().err
    assert "warning: --out: 30 frames of 96x64, a 0.0 GB array; fps, total_frames" in err
    assert np.load(tmp_path / "f.npy").shape == (30, 64, 96, 3)


def test_out_refuses_an_array_larger_than_the_memory_available(tmp_path, capsys, monkeypatch):
    import kifaru.cli.commands.frames
    import kifaru.runtime.memory

    clip = make_clip(tmp_path / "clip.mp4", n_frames=30, fps=10)
    monkeypatch.setattr(kifaru.cli.commands.frames, "FRAMES_ARRAY_WARN_BYTES", 0)
    monkeypatch.setattr(kifaru.runtime.memory, "available_memory_bytes", lambda: 100_000)
    assert main(["frames", str(clip), "--out", str(tmp_path / "f.npy")]) == 2
    err = capsys.readouterr().err
    assert "more than the 0.0 GB of memory available" in err and "model_input_height/width" in err
    assert not (tmp_path / "f.npy").exists()
