"""``kifaru samples``: clips made from real photographs, for a first run on a fresh machine."""

from kifaru import load_video
from kifaru.samples import SAMPLES, make_samples


def test_samples_are_real_clips_in_trail_camera_codecs(tmp_path):
    paths = make_samples(tmp_path, seconds=1.0, fps=5)
    assert [p.name for p in paths] == [name for name, *_ in SAMPLES]
    for path in paths:
        loaded = load_video(path, crop_bottom_pixels=30)
        assert loaded.info.frame_count == 5 and loaded.frames.shape == (5, 330, 640, 3)
        assert loaded.frames.std() > 20  # a photograph, not a flat colour
    assert load_video(paths[1]).info.codec == "mjpeg"
    # Running again keeps the existing files.
    before = [p.stat().st_mtime_ns for p in paths]
    assert [p.stat().st_mtime_ns for p in make_samples(tmp_path, seconds=1.0, fps=5)] == before
