"""A Ray cluster of separate ``ray start`` processes on 127.0.0.1, for the Ray backend's tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import pytest

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def ray_cluster(nodes: Sequence[Sequence[str]] = (("--num-cpus=1",), ("--num-cpus=1",)), settings: Mapping[str, str] = {}) -> Iterator[str]:
    """A head and further nodes (each one's own ``ray start`` options), with Ray's system
    ``settings`` (RAY_name environment variables); yields the address."""
    import ray

    if not Path(RAY).exists():
        pytest.skip("the ray command is not in this venv")
    port = _free_port()
    # A test cluster on 127.0.0.1 only: without the token authentication Ray 2.5x turns on by default.
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **{f"RAY_{name}": value for name, value in settings.items()}}
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    head, *others = nodes

    def start(*options: str) -> None:
        done = subprocess.run([RAY, "start", *options], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, f"ray start {' '.join(options)}: {done.stdout}{done.stderr}"

    start("--head", f"--port={port}", "--include-dashboard=false", *common, *head)
    try:
        for node in others:
            start(f"--address=127.0.0.1:{port}", *common, *node)
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=env, timeout=120)
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved


def actor_pids(actor_class: str) -> list[int]:
    """The processes of kifaru's Ray actors of one class on this machine (Ray names them ray::CLASS)."""
    prefix = f"ray::{actor_class}".encode()
    return [pid for pid, command in _processes() if command.startswith(prefix)]


def kill_node(ray, node_id: str) -> list[int]:
    """Loses a node as a crashed machine would: its raylet and every process it started
    (its actors' workers) killed at once with SIGKILL. Returns the pids killed."""
    node = next(n for n in ray.nodes() if n["NodeID"] == node_id)
    socket_arg = f"--raylet_socket_name={node['RayletSocketName']}".encode()
    raylets = [pid for pid, command in _processes() if command.split(b"\0")[0].endswith(b"/raylet") and socket_arg in command.split(b"\0")]
    assert len(raylets) == 1, f"no single raylet for node {node_id}: {raylets}"
    children = [pid for pid, _ in _processes() if _parent(pid) == raylets[0]]
    for pid in [*children, *raylets]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return [*children, *raylets]


def predicted_here_and_run_for(cluster: str, tmp_path: Path, clips: int):
    """``clips`` clips made in tmp_path/clips and predicted here with a tiny checkpoint (outputs in
    tmp_path/local), and the same prediction resolved to run on ``cluster`` (into tmp_path/ray):
    returns (the clips' folder, that run)."""
    from kifaru.config.run import PredictConfig
    from kifaru.runs.predict import predict_model, resolve_predict_run
    from tests.media import make_clip
    from tests.models.tiny_model import write_tiny_checkpoint

    folder = tmp_path / "clips"
    for i in range(clips):
        make_clip(folder / f"c{i}.mp4", n_frames=20 + i)
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.ckpt")

    def config(save_dir: Path) -> PredictConfig:
        return PredictConfig(data_dir=folder, checkpoint=checkpoint, save_dir=save_dir, batch_size=1, model_cache_dir=tmp_path / "cache")

    predict_model(config(tmp_path / "local"))
    run = resolve_predict_run(config(tmp_path / "ray"))
    run.backend, run.ray_address = "ray", cluster
    return folder, run


def _processes() -> Iterator[tuple[int, bytes]]:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                yield int(proc.name), (proc / "cmdline").read_bytes()
            except OSError:
                continue


def _parent(pid: int) -> int:
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1
