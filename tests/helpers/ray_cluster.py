"""A Ray cluster of separate ``ray start`` processes on 127.0.0.1, for the Ray backend's tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import pytest

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def ray_cluster(nodes: Sequence[Sequence[str]] = (("--num-cpus=1",), ("--num-cpus=1",))) -> Iterator[str]:
    """A head and further nodes (each one's own ``ray start`` options); yields the address."""
    import ray

    if not Path(RAY).exists():
        pytest.skip("the ray command is not in this venv")
    port = _free_port()
    # A test cluster on 127.0.0.1 only: without the token authentication Ray 2.5x turns on by default.
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    head, *others = nodes
    start = dict(check=True, capture_output=True, env=env, timeout=120)
    subprocess.run([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false", *common, *head], **start)
    try:
        for node in others:
            subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", *common, *node], **start)
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
    pids = []
    prefix = f"ray::{actor_class}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if command.startswith(prefix):
            pids.append(int(proc.name))
    return pids
