"""``kifaru.runs.engine.run_items``: the run every command shares, with a journal and a real worker
pool: resumed items, failures without opening the file, a worker that dies, an interrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest

from kifaru.config import VideoLoaderConfig
from kifaru.exceptions import ConfigError, Interrupted
from kifaru.runs import backends
from kifaru.runs.backends import WorkerPool
from kifaru.runs.engine import run_items
from kifaru.runs.inputs import items_from
from kifaru.runs.journal import Journal
from kifaru.runs.records import STAGE_FILE, STAGE_WORKER, Record
from kifaru.runs.tasks import LoadFrames
from tests.media import index_frame, make_clip
from tests.runs.crashing import run_or_crash

CONFIG = VideoLoaderConfig(fps=2, total_frames=4)


@pytest.fixture
def folder(tmp_path) -> Path:
    for k, name in enumerate(["a.mp4", "crash.mp4", "b.mp4"]):
        make_clip(tmp_path / "clips" / name, n_frames=20, frames=[index_frame(10 * k + i) for i in range(20)])
    (tmp_path / "clips" / "sub").mkdir()
    return tmp_path / "clips"


def _names(folder: Path) -> list[str]:
    return [str(folder / n) for n in ["a.mp4", "sub", "crash.mp4", "missing.mp4", "b.mp4"]]


class Recorder:
    """A pipeline on a worker pool that remembers which items it was given."""

    def __init__(self) -> None:
        self.given: list[list[str]] = []

    def __call__(self, todo, finish) -> None:
        self.given.append([Path(item.name).name for item in todo])
        with WorkerPool(LoadFrames(CONFIG), 2) as pool:
            for loaded in pool.map(todo):
                finish(loaded.record)


def _journal(tmp_path: Path, **header) -> Journal:
    return Journal(tmp_path / "journal.jsonl", {"test_run": 1, **header}, outputs=[tmp_path / "out.csv"], keep=True)


def test_a_file_that_kills_its_worker_is_recorded_and_a_rerun_does_not_retry_it(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "_run_in_worker", run_or_crash)
    pipeline, seen = Recorder(), []
    first = run_items(items_from(_names(folder)), pipeline, journal=_journal(tmp_path), progress=lambda r, n, t: seen.append((n, t)))
    by_name = {Path(r.item).name: r for r in first.records}
    assert list(by_name) == ["a.mp4", "sub", "crash.mp4", "missing.mp4", "b.mp4"]  # input order
    assert by_name["crash.mp4"].stage == STAGE_WORKER and "died" in by_name["crash.mp4"].reason
    assert (by_name["sub"].stage, by_name["missing.mp4"].stage) == (STAGE_FILE, STAGE_FILE)
    assert by_name["missing.mp4"].reason == "no such file" and "folder" in by_name["sub"].reason
    assert not by_name["a.mp4"].failed and not by_name["b.mp4"].failed
    assert pipeline.given == [["a.mp4", "crash.mp4", "b.mp4"]]  # the unreadable ones were never opened
    assert [n for n, _ in seen] == [1, 2, 3, 4, 5] and {t for _, t in seen} == {5}

    again = run_items(items_from(_names(folder)), pipeline, journal=_journal(tmp_path))
    assert pipeline.given == [["a.mp4", "crash.mp4", "b.mp4"]]  # nothing to do again: not even the crash
    assert again.resumed == 3  # the unreadable two are checked again (they cost nothing)
    assert [r.to_json() for r in again.records] == [r.to_json() for r in first.records]


def test_a_changed_file_is_done_again_and_other_settings_are_refused(folder, tmp_path):
    pipeline = Recorder()
    run_items(items_from(_names(folder)[:1]), pipeline, journal=_journal(tmp_path))
    make_clip(folder / "a.mp4", n_frames=10)  # rewritten since: its record is not reused
    run_items(items_from(_names(folder)[:1]), pipeline, journal=_journal(tmp_path))
    assert pipeline.given == [["a.mp4"], ["a.mp4"]]
    with pytest.raises(ConfigError, match="test_run: 1 then, 2 now"):
        run_items(items_from(_names(folder)[:1]), pipeline, journal=_journal(tmp_path, test_run=2))
    result = run_items(items_from(_names(folder)[:1]), pipeline, journal=_journal(tmp_path, test_run=2), overwrite=True)
    assert pipeline.given[-1] == ["a.mp4"] and result.resumed == 0


def test_an_interrupted_run_writes_what_is_finished_and_the_journal_continues_it(folder, tmp_path):
    written = []

    def pipeline(todo, finish):
        finish(Record(todo[0].name, fingerprint=[1, 2]))
        raise KeyboardInterrupt

    def write(records, partial):
        written.append(([Path(r.item).name for r in records], partial))
        return {"out": tmp_path / "out.csv"}

    with pytest.raises(Interrupted) as stopped:
        run_items(items_from(_names(folder)), pipeline, journal=_journal(tmp_path), write=write)
    # In input order: what finished before the interrupt, the unreadable ones included.
    assert written == [(["a.mp4", "sub", "missing.mp4"], (3, 5))]
    assert stopped.value.outputs == {"out": tmp_path / "out.csv"}
    # The header and a.mp4: the unreadable ones are not journaled (a rerun checks them again).
    assert len((tmp_path / "journal.jsonl").read_text().splitlines()) == 1 + 1
