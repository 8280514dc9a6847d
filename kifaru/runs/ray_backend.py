"""The Ray backend: a run's tasks in actors on a Ray cluster (``--backend ray [--ray-address]``).

The same contract as the local worker pool (:mod:`kifaru.runs.backends`): each actor starts the
task once (the detector is loaded once per actor), runs it on item after item, and results come
back to this process, the driver, as they complete, where the engine journals them (on the
output folder, shared storage on a cluster) and writes the outputs as a local run does. Every
item gets exactly one result:

- an actor that dies (its worker process killed, its node lost) is replaced, and the items it
  had in flight are run again, each alone on a fresh actor;
- an item whose actor dies again while it runs alone gets ``task.crashed(item, reason)``: a
  failure record, as in a local run.

Ray is an optional extra (``pip install "kifaru[ray]"``); without it, asking for it says so.
Files are read by the actors where they run: on a cluster the paths must be the same on every
node (shared storage), as must the model cache holding the weights.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any, Iterator, Optional, Sequence

from kifaru.exceptions import ConfigError
from kifaru.runs.inputs import Item

BACKENDS = ("local", "ray")
IN_FLIGHT_PER_ACTOR = 2  # one running, one waiting: an actor never idles between items


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError('--backend ray needs Ray: pip install "kifaru[ray]" (or pip install "ray[default]")') from None
    return ray


def connect(address: Optional[str]) -> Any:
    """Ray, connected to the cluster at ``address`` (None: RAY_ADDRESS, else a Ray started here)."""
    ray = import_ray()
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reporting home from a field station
        try:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        except ConnectionError as error:
            raise ConfigError(f"--ray-address {address}: no Ray cluster answers there ({error}); start one with `ray start --head`") from None
    return ray


def cluster_description(ray: Any) -> str:
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = int(ray.cluster_resources().get("CPU", 0))
    gpus = int(ray.cluster_resources().get("GPU", 0))
    return f"Ray cluster: {len(nodes)} node{'s' if len(nodes) != 1 else ''}, {cpus} CPU{'s' if cpus != 1 else ''}" + (f", {gpus} GPU(s)" if gpus else "")


class _Actor:
    """What runs in a Ray worker: the task, started once."""

    def __init__(self, task: Any) -> None:
        os.environ["OMP_NUM_THREADS"] = "1"  # one core each, as the local workers
        self.task = task
        task.start()

    def run(self, item: Item) -> Any:
        return self.task(item)

    def pid(self) -> int:
        return os.getpid()


class RayBackend:
    """Runs the task in ``num_actors`` Ray actors (None: one per CPU of the cluster)."""

    def __init__(self, task: Any, num_actors: Optional[int] = None, address: Optional[str] = None) -> None:
        self.ray = connect(address)
        self.task = task
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        self.num_actors = max(1, num_actors if num_actors else cpus)
        self._remote = self.ray.remote(num_cpus=1, max_restarts=0)(_Actor)
        self.actors = [self._new_actor() for _ in range(self.num_actors)]

    def _new_actor(self) -> Any:
        return self._remote.remote(self.task)

    def pids(self) -> list[int]:
        """The actors' worker processes (tests kill one)."""
        return self.ray.get([actor.pid.remote() for actor in self.actors])

    def map(self, items: Sequence[Item]) -> Iterator[Any]:
        ray = self.ray
        queue = deque(items)
        suspects: deque[Item] = deque()  # in flight when their actor died: each run again alone
        running: dict[Any, tuple[Item, int]] = {}  # future -> (item, actor slot)
        alone: set[Any] = set()
        load = [0] * self.num_actors
        while queue or suspects or running:
            if suspects:
                if not running:
                    item = suspects.popleft()
                    future = self.actors[0].run.remote(item)
                    running[future] = (item, 0)
                    load[0] += 1
                    alone.add(future)
            else:
                for slot in range(self.num_actors):
                    while queue and load[slot] < IN_FLIGHT_PER_ACTOR:
                        item = queue.popleft()
                        running[self.actors[slot].run.remote(item)] = (item, slot)
                        load[slot] += 1
            done, _ = ray.wait(list(running), num_returns=1)
            for future in done:
                item, slot = running.pop(future)
                load[slot] -= 1
                try:
                    result = ray.get(future)
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError) as error:
                    dead = [f for f, (_, s) in running.items() if s == slot]
                    for other in dead:  # the same actor's other items died with it
                        suspects.append(running.pop(other)[0])
                        alone.discard(other)
                    load[slot] = 0
                    self.actors[slot] = self._new_actor()
                    if future in alone:
                        alone.discard(future)
                        yield self.task.crashed(item, _death_reason(error))
                    else:
                        suspects.append(item)
                    continue
                alone.discard(future)
                yield result

    def close(self, wait: bool = True) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor)
            except Exception:  # already gone with its node
                pass
        self.actors = []

    def __enter__(self) -> "RayBackend":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(wait=exc_type is None)


def _death_reason(error: Exception) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"the Ray worker died while working on it ({first[:200]}): a damaged file, a decoder bug, too little memory or a lost node"
