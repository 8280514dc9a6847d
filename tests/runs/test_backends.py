"""``kifaru.runs.backends``: every item gets one result, in this process and in worker processes,
and an item that kills its worker process gets a ``worker`` failure while the run goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from kifaru.config import VideoLoaderConfig
from kifaru.runs import backends
from kifaru.runs.backends import InProcess, WorkerPool, backend_for
from kifaru.runs.inputs import items_from
from kifaru.runs.records import STAGE_WORKER
from kifaru.runs.tasks import LoadFrames
from tests.media import index_frame, make_clip, read_indices
from tests.runs.crashing import run_or_crash

CONFIG = VideoLoaderConfig(fps=2, total_frames=4)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Clips whose frames show 10 * k + their index; "crash.mp4" and "exit.mp4" are good clips too
    (it is the stand-in worker function that dies on them)."""
    folder = tmp_path_factory.mktemp("clips")
    names = ["a.mp4", "b.mp4", "crash.mp4", "c.mp4", "exit.mp4", "d.mp4", "e.mp4"]
    return {name: make_clip(folder / name, n_frames=20, frames=[index_frame(10 * k + i) for i in range(20)]) for k, name in enumerate(names)}


def _by_name(results) -> dict:
    results = list(results)
    names = [Path(result.record.item).name for result in results]
    assert len(names) == len(set(names)), "one result per clip"
    return dict(zip(names, results))


def _expected_indices(clips, name):
    k = list(clips).index(name)
    return [10 * k + i for i in (0, 5, 10, 15)]


@pytest.mark.parametrize("workers", [0, 2])
def test_each_clip_gets_its_frames_here_and_in_workers(clips, workers):
    with backend_for(LoadFrames(CONFIG), workers) as backend:
        assert isinstance(backend, WorkerPool if workers else InProcess)
        results = _by_name(backend.map(items_from(str(p) for p in clips.values())))
    assert results.keys() == clips.keys()
    for k, name in enumerate(clips):
        result = results[name]
        assert result.index == k and not result.record.failed
        assert result.record.frames_used == [0, 5, 10, 15]  # 10 fps clips of 2 s, at 2 fps
        assert read_indices(result.frames) == _expected_indices(clips, name), name


def test_an_item_that_kills_its_worker_gets_a_worker_failure_and_the_run_goes_on(clips, monkeypatch):
    monkeypatch.setattr(backends, "_run_in_worker", run_or_crash)
    with WorkerPool(LoadFrames(CONFIG), 2) as pool:
        results = _by_name(pool.map(items_from(str(p) for p in clips.values())))
    assert results.keys() == clips.keys()
    killed = results.pop("crash.mp4").record
    exited = results.pop("exit.mp4").record
    assert killed.failed and killed.stage == STAGE_WORKER
    assert "worker process died" in killed.reason and "SIGKILL" in killed.reason and "memory" in killed.reason
    assert exited.failed and exited.stage == STAGE_WORKER and "exited with status 3" in exited.reason
    assert killed.fingerprint is not None  # a finished item: a rerun does not retry it
    # The clips in flight with them (run again alone) and those after (a new pool): all read.
    for name, result in results.items():
        assert not result.record.failed, (name, result.record.reason)
        assert read_indices(result.frames) == _expected_indices(clips, name), name


def test_a_pool_needs_a_worker():
    with pytest.raises(ValueError, match="at least one worker"):
        WorkerPool(LoadFrames(CONFIG), 0)


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
    from kifaru.runs.resolve import resolve_detector
    from kifaru.video.loader import FrameLoader
    from tests.media import make_animal_clip

    clips = [make_animal_clip(tmp_path / name, animal_at) for name, (animal_at, _) in ANIMAL_CLIPS.items()]
    setup = resolve_detector(DETECTOR_CONFIG, workers=2)  # as predict and train do: exported before workers start
    assert setup.detector is None and setup.weights is not None
    with backend_for(setup.task("frames", DETECTOR_CONFIG), 2) as pool:
        results = _by_name(pool.map(items_from(str(c) for c in clips)))
    with FrameLoader(DETECTOR_CONFIG, detector=megadetector_lite) as here:
        for clip in clips:
            result, (animal_at, selected) = results[clip.name], ANIMAL_CLIPS[clip.name]
            assert not result.record.failed, result.record.reason
            assert result.record.frames_used == selected, clip.name
            expected = here.load(clip)
            assert expected.source_indices == selected
            assert (result.frames == expected.frames).all() and result.frames.shape == (4, 32, 48, 3)
            # Every candidate frame's findings come back, the animal's boxes among them.
            scored = {f["frame_number"]: f["detections"] for f in result.record.frames}
            assert sorted(scored) == list(range(12)) or len(scored) >= len(selected)
            assert all(scored[i] for i in animal_at), clip.name
