"""``kifaru.video.parallel.ClipLoader``: every clip gets one result, in worker processes too, and a
clip that kills its worker process gets a ``worker`` failure while the run goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from kifaru.config import VideoLoaderConfig
from kifaru.failures import STAGE_WORKER
from kifaru.video import parallel
from kifaru.video.parallel import ClipLoader
from tests.media import index_frame, make_clip, read_indices
from tests.video.crashing import load_or_crash

CONFIG = VideoLoaderConfig(fps=2, total_frames=4)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Clips whose frames show 10 * k + their index; "crash.mp4" is a good clip too (it is the
    stand-in decoder that crashes on it)."""
    folder = tmp_path_factory.mktemp("clips")
    names = ["a.mp4", "b.mp4", "crash.mp4", "c.mp4", "d.mp4", "e.mp4"]
    return {name: make_clip(folder / name, n_frames=20, frames=[index_frame(10 * k + i) for i in range(20)]) for k, name in enumerate(names)}


def _by_name(results) -> dict[str, parallel.ClipResult]:
    results = list(results)
    names = [result.path.name for result in results]
    assert len(names) == len(set(names)), "one result per clip"
    return dict(zip(names, results))


def test_workers_give_each_clip_its_frames(clips):
    items = list(enumerate(clips.values()))
    with ClipLoader(CONFIG, num_workers=2) as loader:
        results = _by_name(loader.load(items))
    assert results.keys() == clips.keys()
    for k, name in enumerate(clips):
        assert results[name].index == k and not results[name].failed
        assert results[name].source_indices == [0, 5, 10, 15]  # 10 fps clips of 2 s, at 2 fps
        assert read_indices(results[name].frames) == [10 * k + i for i in (0, 5, 10, 15)], name


def test_a_clip_that_kills_its_worker_gets_a_worker_failure_and_the_run_goes_on(clips, monkeypatch):
    monkeypatch.setattr(parallel, "_load_in_worker", load_or_crash)
    items = list(enumerate(clips.values()))
    with ClipLoader(CONFIG, num_workers=2) as loader:
        results = _by_name(loader.load(items))
    assert results.keys() == clips.keys()
    crashed = results.pop("crash.mp4")
    assert crashed.failed and crashed.failure_stage == STAGE_WORKER and crashed.frames is None
    assert "crashed the worker process" in crashed.failure_reason
    # The clips in flight with it (retried alone) and those after it (a new pool): all read.
    for name, result in results.items():
        k = list(clips).index(name)
        assert not result.failed, (name, result.failure_reason)
        assert read_indices(result.frames) == [10 * k + i for i in (0, 5, 10, 15)], name


# -- the real MegadetectorLite in the workers (the production default) ------------------------------

DETECTOR_CONFIG = VideoLoaderConfig(
    fps=4,
    total_frames=4,
    model_input_height=32,
    model_input_width=48,
    megadetector_lite_config={"n_frames": 4, "image_height": 416, "image_width": 416, "device": "cpu"},
)
# Where each clip shows the animal, and the frames the detector then selects: the animal's, then
# (nothing else scores above 0) the earliest others, in time order.
ANIMAL_CLIPS = {"three.mp4": ([3, 7, 8], [0, 3, 7, 8]), "ends.mp4": ([0, 11], [0, 1, 2, 11]), "one.mp4": ([5], [0, 1, 2, 5])}


def test_workers_select_frames_with_the_real_detector(megadetector_lite, tmp_path):
    from kifaru.detection.megadetector_lite import export_before_workers
    from kifaru.models.registry import MEGADETECTOR_LITE
    from kifaru.models.weights import locate_weights
    from kifaru.video.loader import FrameLoader
    from tests.media import make_animal_clip

    clips = [make_animal_clip(tmp_path / name, animal_at) for name, (animal_at, _) in ANIMAL_CLIPS.items()]
    weights = locate_weights(MEGADETECTOR_LITE).path
    export_before_workers(weights, MEGADETECTOR_LITE.weights_sha256, "cpu")  # as predict and train do
    with ClipLoader(DETECTOR_CONFIG, num_workers=2, detector_weights=weights, detector_device="cpu") as loader:
        results = _by_name(loader.load(list(enumerate(clips))))
    with FrameLoader(DETECTOR_CONFIG, detector=megadetector_lite) as here:
        for clip in clips:
            result, (_, selected) = results[clip.name], ANIMAL_CLIPS[clip.name]
            assert not result.failed, result.failure_reason
            assert result.source_indices == selected, clip.name
            expected = here.load(clip)
            assert expected.source_indices == selected
            assert (result.frames == expected.frames).all() and result.frames.shape == (4, 32, 48, 3)
