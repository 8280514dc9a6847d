"""Ctrl-C (SIGINT) and SIGTERM during ``kifaru detect`` and ``kifaru predict``, sent for real to a
``kifaru`` process: it exits 130 after writing the outputs of the files finished, says so and how
to continue, and the same command run again ends with the outputs of an uninterrupted run.

The process is stopped at a known point: a patched step blocks (in the main thread, where the
signal is handled) once the first files are finished, and the test signals it then.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kifaru.cli import EXIT_OK, main
from kifaru.runs.detect import DETECTIONS_JSON, PROGRESS_FILE, SUMMARY_CSV
from kifaru.outputs.results_file import RESULTS_FILE
from kifaru.outputs.segments_csv import SEGMENTS_CSV
from kifaru.runs.predict import FAILURES_CSV, PREDICTIONS_CSV
from kifaru.runs.predict import PROGRESS_FILE as PREDICT_PROGRESS_FILE
from tests.detection.fakes import IndexScoringDetector
from tests.media import index_frame, make_clip
from tests.models.tiny_model import write_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[2]
SCORES = {10: 0.9, 30: 0.4, 50: 0.7}  # clip k shows 10k .. 10k+9: clips 1, 3 and 5 have an animal

# Runs `kifaru ARGV` with the stand-in detector; the BLOCK_AT-th file blocks until signalled.
DETECT_RUN = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
import kifaru.detection.megadetector_lite as megadetector_lite
from kifaru.runs.tasks import DetectFile
from tests.detection.fakes import IndexScoringDetector

megadetector_lite.load_megadetector_lite = lambda **options: IndexScoringDetector({scores!r})
detect_file, started = DetectFile.__call__, []

def blocking(self, item):
    started.append(item)
    if len(started) == {block_at}:
        Path({ready!r}).touch()
        time.sleep(120)  # the signal ends this
    return detect_file(self, item)

DetectFile.__call__ = blocking
from kifaru.cli import main
sys.exit(main({argv!r}))
"""

# Runs `kifaru ARGV` with the tiny model; its BLOCK_AT-th batch blocks until signalled.
PREDICT_RUN = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
import tests.models.tiny_model  # registers the tiny model class
from kifaru.models.runner import VideoClassifier

predict_proba, batches = VideoClassifier.predict_proba, []

def blocking(self, clips):  # a model call
    batches.append(len(clips))
    if len(batches) == {block_at}:
        Path({ready!r}).touch()
        time.sleep(120)  # the signal ends this
    return predict_proba(self, clips)

VideoClassifier.predict_proba = blocking
if __name__ == "__main__":  # worker processes import this script again
    from kifaru.cli import main
    sys.exit(main({argv!r}))
"""


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    for k in range(6):
        make_clip(folder / f"clip{k}.mp4", n_frames=10, frames=[index_frame(10 * k + i) for i in range(10)])
    return folder


@pytest.fixture
def stand_in_detector(monkeypatch):
    import kifaru.detection.megadetector_lite as module

    monkeypatch.setattr(module, "load_megadetector_lite", lambda **options: IndexScoringDetector(SCORES))


def interrupted(script: str, tmp_path: Path, signum: int, *, group: bool) -> subprocess.CompletedProcess:
    """Run ``script`` (its ``ready`` file made when it blocks), signal it then, and return how it
    ended. ``group``: signal its process group, as a terminal's Ctrl-C does (workers included)."""
    path = tmp_path / "run.py"
    path.write_text(script)
    process = subprocess.Popen(
        [sys.executable, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=tmp_path
    )
    ready = tmp_path / "ready"
    deadline = time.monotonic() + 120
    while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), f"the run did not reach the point where it is stopped: {process.communicate()}"
    (os.killpg if group else os.kill)(process.pid, signum)
    out, err = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def continue_command(stderr: str) -> list[str]:
    """The command the message says to run again, as arguments of main()."""
    lines = stderr.splitlines()
    position = lines.index("to continue, run the same command again (finished files are not done again):")
    command = shlex.split(lines[position + 1])
    assert command[0] == "kifaru"
    return command[1:]


def comparable(out: Path) -> tuple[dict, str]:
    data = json.loads((out / DETECTIONS_JSON).read_text(encoding="utf-8"))
    del data["info"]["detection_completion_time"]
    return data, (out / SUMMARY_CSV).read_text(encoding="utf-8")


@pytest.mark.parametrize(("signum", "named"), [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")], ids=["SIGINT", "SIGTERM"])
def test_detect_stopped_by_a_signal_writes_what_is_finished_and_continues(clips, tmp_path, stand_in_detector, capsys, signum, named):
    out = tmp_path / "out"
    argv = ["detect", "--data-dir", str(clips), "--output-dir", str(out), "--num-workers", "0"]  # the stand-in runs here
    script = DETECT_RUN.format(root=str(ROOT), scores=SCORES, block_at=3, ready=str(tmp_path / "ready"), argv=argv)
    # SIGTERM to the process only, as `kill` or a container runtime sends it.
    stopped = interrupted(script, tmp_path, signum, group=signum == signal.SIGINT)

    assert stopped.returncode == 130, stopped.stderr
    assert (
        f"interrupted ({named}): 2 of 6 files finished; partial outputs, for those only: "
        f"{out / DETECTIONS_JSON}, {out / SUMMARY_CSV}, {out / SEGMENTS_CSV}, {out / RESULTS_FILE}\n" in stopped.stderr
    )
    assert "Traceback" not in stopped.stderr
    data = json.loads((out / DETECTIONS_JSON).read_text(encoding="utf-8"))
    assert [entry["file"] for entry in data["images"]] == ["clip0.mp4", "clip1.mp4"]
    assert data["info"]["custom_metadata"]["partial"]["files_done"] == 2
    assert (out / SUMMARY_CSV).read_text().splitlines()[1:] == [
        f"{clips / 'clip0.mp4'},video,blank,0.0,1,0,,,,",
        f"{clips / 'clip1.mp4'},video,animal,0.9,1,1,0.0,0.0,,",
    ]
    assert (out / PROGRESS_FILE).read_text().count("\n") == 1 + 2

    command = continue_command(stopped.stderr)
    assert command == argv
    assert main(command) == EXIT_OK
    assert "6 files: 3 with an animal, 3 blank, 0 failed (2 done by an earlier run)" in capsys.readouterr().out
    assert main(["detect", "--data-dir", str(clips), "--output-dir", str(tmp_path / "whole"), "--num-workers", "0", "-q"]) == EXIT_OK
    assert comparable(out) == comparable(tmp_path / "whole")
    assert "partial" not in json.loads((out / DETECTIONS_JSON).read_text())["info"]["custom_metadata"]


def test_predict_stopped_by_ctrl_c_with_worker_processes_writes_the_clips_finished_and_continues(clips, tmp_path, capsys):
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    out = tmp_path / "out"
    argv = ["predict", "--data-dir", str(clips), "--checkpoint", str(checkpoint), "--save-dir", str(out), "--num-workers", "2", "--batch-size", "2"]
    # The second batch blocks (its first clip, the third model call: each clip is a call of its own): the first two are finished.
    script = PREDICT_RUN.format(root=str(ROOT), block_at=3, ready=str(tmp_path / "ready"), argv=argv)
    stopped = interrupted(script, tmp_path, signal.SIGINT, group=True)

    assert stopped.returncode == 130, stopped.stderr
    assert f"interrupted (Ctrl-C): 2 of 6 files finished; partial outputs, for those only: {out / PREDICTIONS_CSV}" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    finished = [json.loads(line)["item"] for line in (out / PREDICT_PROGRESS_FILE).read_text().splitlines()[1:]]
    rows = (out / PREDICTIONS_CSV).read_text().splitlines()
    assert len(finished) == 2 and sorted(row.split(",")[0] for row in rows[1:]) == sorted(finished)
    assert (out / FAILURES_CSV).read_text() == "filepath,stage,reason\n"

    command = continue_command(stopped.stderr)
    assert command == argv
    assert main(command) == EXIT_OK
    assert "6 files: 6 predicted, 0 failed (2 done by an earlier run)" in capsys.readouterr().out
    whole = tmp_path / "whole"
    assert main(["predict", "--data-dir", str(clips), "--checkpoint", str(checkpoint), "--save-dir", str(whole), "--num-workers", "0", "-q"]) == EXIT_OK
    for name in (PREDICTIONS_CSV, FAILURES_CSV):
        assert (out / name).read_text() == (whole / name).read_text()
