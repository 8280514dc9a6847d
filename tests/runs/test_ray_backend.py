"""The Ray backend on a local Ray cluster of two nodes (a head and a second node, each its own
``ray start`` process, on 127.0.0.1): its outputs are the local backend's, byte for byte, and a
worker killed mid-run loses no file and doubles none."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kifaru.cli import EXIT_FAILED, EXIT_OK, main
from kifaru.outputs.results_file import RESULTS_FILE
from tests.helpers.outputs import assert_same_outputs
from tests.media import make_animal_clip, make_clip
from tests.models.tiny_model import write_tiny_checkpoint

ray = pytest.importorskip("ray")
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not Path(RAY).exists():
        pytest.skip("the ray command is not in this venv")
    port = _free_port()
    # A test cluster on 127.0.0.1 only: without the token authentication Ray 2.5x turns on by default.
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    subprocess.run([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", *common], check=True, capture_output=True, env=env, timeout=120)
    try:
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", *common], check=True, capture_output=True, env=env, timeout=120)
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=env, timeout=120)
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved





@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    for i in range(6):
        make_animal_clip(folder / f"cam{i % 2}" / f"clip{i}.mp4", animal_at=range(i, i + 4), n_frames=12, fps=4)
    (folder / "cam1" / "broken.mp4").write_bytes(b"not a video at all")
    return folder


def test_detect_on_a_two_node_cluster_writes_what_a_local_run_writes(cluster, clips, megadetector_lite, tmp_path, capsys):
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert main(["detect", "--data-dir", str(clips), "--output-dir", str(local), "-q"]) == EXIT_FAILED
    capsys.readouterr()
    assert main(["detect", "--data-dir", str(clips), "--output-dir", str(remote), "--backend", "ray", "--ray-address", cluster, "-q"]) == EXIT_FAILED
    assert "backend: Ray cluster: 2 nodes, 2 CPUs" in capsys.readouterr().err
    assert_same_outputs(local, remote, ["detections.json", "detection_summary.csv", "segments.csv", RESULTS_FILE])


def test_a_worker_killed_mid_run_loses_and_doubles_no_file(cluster, clips, megadetector_lite, tmp_path):
    from kifaru.runs.detect import detect_files, resolve_detect_run

    local, remote = tmp_path / "local", tmp_path / "ray"
    files = sorted(p for p in clips.rglob("*.mp4"))
    detect_files(files, local, relative_to=clips, num_workers=0)
    run = resolve_detect_run(files, remote, relative_to=clips, backend="ray", ray_address=cluster)
    killed = []

    def progress(record, done, total):
        if done == 1 and not killed:  # the others are in flight: kill a worker that runs one
            pids = _actor_pids()
            assert pids, "no Ray actor process found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    report = detect_files(run=run, progress=progress)
    assert killed
    assert sorted(r.item for r in report.records) == sorted(str(f) for f in files)  # each once
    assert_same_outputs(local, remote, ["detections.json", "detection_summary.csv", RESULTS_FILE])


def _actor_pids() -> list[int]:
    """The processes of kifaru's Ray actors on this machine (Ray names them ray::_Actor)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if command.startswith(b"ray::_Actor"):
            pids.append(int(proc.name))
    return pids


def test_predict_reads_clips_in_the_cluster_and_writes_what_a_local_run_writes(cluster, tmp_path, capsys):
    folder = tmp_path / "clips"
    for i in range(4):
        make_clip(folder / f"c{i}.mp4", n_frames=20 + i)
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    base = ["predict", "--data-dir", str(folder), "--checkpoint", str(checkpoint), "--output-format", "csv,megadetector"]
    assert main([*base, "--save-dir", str(tmp_path / "local")]) == EXIT_OK
    assert main([*base, "--save-dir", str(tmp_path / "ray"), "--backend", "ray", "--ray-address", cluster]) == EXIT_OK
    assert_same_outputs(tmp_path / "local", tmp_path / "ray", ["zamba_predictions.csv", "megadetector_predictions.json", RESULTS_FILE])


def test_without_ray_the_backend_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    import builtins

    from kifaru.cli import EXIT_USAGE

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("no ray")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    make_clip(tmp_path / "a.mp4")
    assert main(["detect", "--data-dir", str(tmp_path), "--backend", "ray"]) == EXIT_USAGE
    assert 'pip install "kifaru[ray]"' in capsys.readouterr().err
