"""Past one machine as a new user types it, with only the required arguments, in a fresh HOME:
shards run in their own folders and merged where the user stands, and ``--backend ray`` with no
address, which starts a Ray on this machine."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kifaru.cli import EXIT_OK, main
from tests.helpers.outputs import assert_same_outputs

# Not kifaru_results.jsonl: it names the folder each run was started in (its "base").
DETECT_OUTPUTS = ["detections.json", "detection_summary.csv", "segments.csv"]


@pytest.fixture
def clips(new_user):
    from kifaru.samples import make_samples

    new_user.serve_megadetector_lite()
    make_samples(new_user.work / "clips", seconds=2.0, fps=5)
    return new_user.work / "clips"


def test_shards_in_their_own_folders_merged_here_are_the_run_made_in_one_go(new_user, clips, capsys):
    work = new_user.work
    for index in (1, 2):
        (work / f"shard{index}").mkdir()
        new_user.monkeypatch.chdir(work / f"shard{index}")
        assert main(["detect", "--data-dir", "../clips", "--shard", f"{index}/2"]) == EXIT_OK
        assert f"shard {index}/2: " in capsys.readouterr().err
    (work / "season").mkdir()
    new_user.monkeypatch.chdir(work / "season")
    assert main(["merge", "../shard1", "../shard2"]) == EXIT_OK
    assert "merged 2 shards: 4 files, 0 failed" in capsys.readouterr().err
    (work / "whole").mkdir()
    new_user.monkeypatch.chdir(work / "whole")
    assert main(["detect", "--data-dir", "../clips"]) == EXIT_OK
    assert_same_outputs(work / "whole", work / "season", DETECT_OUTPUTS)


def test_backend_ray_without_an_address_starts_a_ray_here(new_user, clips):
    """In a process of its own, as a user runs it: a Ray started by a test's own process would
    stay that process's Ray for the cluster tests after it."""
    pytest.importorskip("ray")
    new_user.monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # After the run, where the Ray it started listens: the loopback, which no firewall closes.
    code = "import sys; from kifaru.cli import main; code = main(sys.argv[1:]); import ray; print(*sorted({n['NodeManagerAddress'] for n in ray.nodes()})); sys.exit(code)"
    done = subprocess.run([sys.executable, "-c", code, "detect", "--data-dir", "clips", "--backend", "ray"], capture_output=True, text=True, timeout=300)
    assert done.returncode == EXIT_OK, done.stderr
    assert done.stdout.splitlines()[-1] == "127.0.0.1"
    assert "backend: Ray cluster: 1 node" in done.stderr and "one actor per CPU of the Ray cluster" in done.stderr
    assert main(["detect", "--data-dir", "clips", "--output-dir", "local"]) == EXIT_OK
    assert_same_outputs(new_user.work / "local", new_user.work, DETECT_OUTPUTS)
