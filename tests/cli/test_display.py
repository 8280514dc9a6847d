"""The CLI's progress line (``kifaru.cli.display.ProgressBar``): files done and failed, and the time left,
estimated from this run's own files only (those an earlier run finished come back at once)."""

from __future__ import annotations

import time

import pytest

from kifaru.cli.display import ProgressBar
from kifaru.runs.records import Record


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(time, "monotonic", clock)
    return clock


def _lines(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_time_left_is_the_time_per_file_so_far_times_the_files_left(clock, capsys):
    bar = ProgressBar()
    clock.now += 10
    bar.update(Record("a.mp4", outputs={"probabilities": [1.0]}), 1, 10)  # 10 s a file, 9 to go: 90 s
    clock.now += 10
    bar.update(Record.failure("b.mp4", "decode", "it is empty"), 2, 10)
    clock.now += 100
    bar.update(Record("c.mp4", outputs={"probabilities": [1.0]}), 3, 10)  # 40 s a file, 7 to go
    clock.now += 1
    bar.update(Record("d.mp4", outputs={"probabilities": [1.0]}), 10, 10)  # the last: nothing left to estimate
    bar.close()
    assert _lines(capsys) == [
        "[1/10 files, 0 failed, ~2 min left] a.mp4: done",
        "[2/10 files, 1 failed, ~80 s left] b.mp4: FAILED (decode): it is empty",
        "[3/10 files, 1 failed, ~5 min left] c.mp4: done",
        "[10/10 files, 1 failed] d.mp4: done",
    ]


def test_files_an_earlier_run_finished_do_not_count_towards_the_rate(clock, capsys):
    bar = ProgressBar()
    for done in range(1, 6):  # resumed from the progress file, all at once
        bar.update(Record(f"old{done}.mp4", outputs={"probabilities": [1.0]}), done, 96)
    clock.now += 60
    bar.update(Record("new.mp4", outputs={"probabilities": [1.0]}), 6, 96)  # this run's first file: 60 s, 90 to go
    clock.now += 30
    bar.update(Record("next.mp4", outputs={"probabilities": [1.0]}), 7, 96)  # 45 s a file, 89 to go
    assert _lines(capsys)[-2:] == [
        "[6/96 files, 0 failed, ~1.5 h left] new.mp4: done",
        "[7/96 files, 0 failed, ~67 min left] next.mp4: done",
    ]


def test_quiet_prints_only_failures_and_notes(clock, capsys):
    bar = ProgressBar(quiet=True)
    clock.now += 4
    bar.update(Record("a.mp4", outputs={"probabilities": [1.0]}), 1, 3)
    bar.update(Record("b.mp4", outputs={"probabilities": [1.0]}, notes=["the header announces 90 frames; 1 is there"]), 2, 3)
    bar.update(Record.failure("c.mp4", "worker", "its worker process died"), 3, 3)
    assert _lines(capsys) == [
        "[2/3 files, 0 failed, ~2 s left] b.mp4: done; warning: the header announces 90 frames; 1 is there",
        "[3/3 files, 1 failed] c.mp4: FAILED (worker): its worker process died",
    ]


def test_a_command_describes_each_finished_file_its_own_way(clock, capsys):
    bar = ProgressBar(outcome=lambda record: f"{len(record.frames)} frames scored")
    bar.update(Record("a.mp4", frames=[{"frame_number": 0, "time": 0.0, "detections": []}]), 1, 1)
    assert _lines(capsys) == ["[1/1 files, 0 failed] a.mp4: 1 frames scored"]
