"""``kifaru samples``: clips made from real photographs, for a first run on a fresh machine."""

from pathlib import Path

import pytest

from kifaru import load_video
from kifaru.runs.detect import default_detect_config
from kifaru.samples import SAMPLES, make_samples
from kifaru.video.loader import FrameLoader


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return make_samples(tmp_path_factory.mktemp("samples"), seconds=3.0, fps=5)


def test_samples_are_real_clips_in_trail_camera_codecs(samples):
    assert [p.name for p in samples] == [sample.name for sample in SAMPLES]
    for path, sample in zip(samples, SAMPLES):
        loaded = load_video(path, crop_bottom_pixels=24)
        expected_frames = 1 if sample.codec == "jpeg" else 15
        assert loaded.info.frame_count == expected_frames and loaded.frames.shape[1:] == (336, 640, 3)
        assert loaded.frames.std() > 20  # a photograph, not a flat colour
    assert load_video(samples[1]).info.codec == "mjpeg"


def test_running_again_keeps_the_existing_files(samples):
    before = [p.stat().st_mtime_ns for p in samples]
    assert [p.stat().st_mtime_ns for p in make_samples(samples[0].parent, seconds=3.0, fps=5)] == before


def test_the_detector_finds_the_cat_and_nothing_in_the_empty_scene(samples, megadetector_lite):
    loader = FrameLoader(default_detect_config(fps=1), detector=megadetector_lite)
    for path, sample in zip(samples, SAMPLES):
        found = loader.detect(path)
        scores = [d.score for d in found.detections]
        times = [t for t, s in zip(found.times, scores) if s >= 0.5]
        if sample.cat_from is None:
            assert max(scores) == 0.0, path.name
        else:
            assert max(scores) >= 0.6, path.name
            # The cat is seen from the second it walks in (frames at 1 fps: 0, 1, 2 s).
            assert min(times) == pytest.approx(sample.cat_from) or (sample.codec == "jpeg" and times == [0.0])


def test_samples_command_as_a_new_user(new_user, capsys):
    """`kifaru samples FOLDER` with nothing else: the default 6 s clips at 15 fps, and their paths."""
    from kifaru.cli import main

    assert main(["samples", "samples"]) == 0
    folder = new_user.work / "samples"
    assert capsys.readouterr().out.split() == [str(Path("samples") / sample.name) for sample in SAMPLES]
    assert sorted(p.name for p in folder.iterdir()) == sorted(sample.name for sample in SAMPLES)  # no partials
    for sample in SAMPLES:
        info = load_video(folder / sample.name, fps=1).info
        assert (info.codec, info.frame_count) == (
            {"libx264": "h264", "mjpeg": "mjpeg", "jpeg": "image"}[sample.codec],
            1 if sample.codec == "jpeg" else 90,
        )
