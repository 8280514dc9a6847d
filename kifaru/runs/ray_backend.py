"""The Ray backend: a run's tasks in actors on a Ray cluster (``--backend ray [--ray-address]``).

The same contract as the local worker pool (:mod:`kifaru.runs.backends`): each actor starts the
task once (the detector is loaded once per actor), runs it on item after item, and results come
back to this process, the driver, as they complete, where the engine journals them (on the
output folder, shared storage on a cluster) and writes the outputs as a local run does. Every
item gets exactly one result:

- an actor that dies (its worker process killed, its node lost) is replaced, and the items it
  had in flight are run again, each alone on a fresh actor;
- where the cluster has no room left for the replacement (a lost node's CPUs or GPU are gone, the
  others all hold actors of the run), the pool goes on with fewer actors, saying so (:class:`_Pool`);
- an item whose actor dies again while it runs alone gets ``task.crashed(item, reason)``: a
  failure record, as in a local run.

The classifier of predict and image predict runs in actors of its own (:class:`RayClassifiers`:
one per GPU of the cluster, else one per node), fed batches by the driver.

Ray is an optional extra (``pip install "kifaru[ray]"``); without it, asking for it says so.
Files are read by the actors where they run: on a cluster the paths must be the same on every
node (shared storage), as must the model cache holding the weights.
"""

from __future__ import annotations

import os
from collections import deque
from contextlib import contextmanager
from typing import Any, Collection, Iterator, Optional, Sequence

from kifaru.exceptions import ConfigError
from kifaru.notices import notify
from kifaru.progress import plural
from kifaru.runs.inputs import Item

BACKENDS = ("local", "ray")
LOCAL_RAY_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's nodes on the loopback
IN_FLIGHT_PER_ACTOR = 2  # one running, one waiting: an actor never idles between items
RECHECK_SECONDS = 2.0  # how often a run waiting on a new actor looks whether it can start at all
MAX_FAILED_STARTS = 3  # a slot's actors dying before they start, in a row, before their work takes the blame


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError('--backend ray needs Ray: pip install "kifaru[ray]" (or pip install "ray[default]")') from None
    return ray


def connect(address: Optional[str]) -> Any:
    """Ray, connected to the cluster at ``address`` (None: RAY_ADDRESS, else a Ray started here)."""
    started_here = address is None and not os.environ.get("RAY_ADDRESS")
    # A Ray of this machine alone listens and calls on the loopback, as Ray's own on macOS and
    # Windows. Left to itself on Linux it uses the address of the machine's route out, which a
    # firewalled network may refuse: its start then hangs. The setting is read when Ray is
    # imported, and by the processes its start spawns; it is put back after, so that nothing
    # else this process starts (a `ray start` joining a cluster) inherits it.
    with _environ(LOCAL_RAY_ONLY, "0" if started_here else None):
        ray = import_ray()
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reporting home from a field station
            # "local": a new Ray for this run, not one a `ray start` left running here.
            where = "local" if started_here else address
            try:
                ray.init(address=where, logging_level="ERROR", log_to_driver=False)
            except ConnectionError as error:
                raise ConfigError(f"--ray-address {address}: no Ray cluster answers there ({error}); start one with `ray start --head`") from None
    return ray


@contextmanager
def _environ(name: str, value: Optional[str]) -> Iterator[None]:
    """The environment variable ``name`` set to ``value`` within (None: left as it is)."""
    saved = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


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


class _Pool:
    """A pool's actors by slot as the cluster changes under it.

    An actor that dies is replaced while the cluster has room for it (its worker process killed,
    say). When a node is lost, the CPUs or GPUs it had are gone and every other one holds an actor
    of the pool: a replacement would wait for them forever, so instead its slot is dropped and the
    run goes on with the actors left. Ray may learn of the lost node only after the actor's death
    is reported, so a replacement that has not started is looked at again (:meth:`stuck`) while the
    run waits."""

    def __init__(self, ray: Any, make: Any, count: int, what: str) -> None:
        self.ray = ray
        self._make = make  # (slot, replacing) -> (actor, the resources it asks for)
        self.what, self.started_with = what, count
        self.actors: dict[int, Any] = {}
        self._needs: dict[int, dict[str, float]] = {}
        for slot in range(count):
            self.actors[slot], self._needs[slot] = make(slot, False)
        self.starting: dict[int, Any] = {}  # slot -> its new actor's ready future
        self._failed_starts: dict[int, int] = {}  # slot -> its actors' deaths before they started, in a row

    def live(self) -> list[int]:
        return sorted(self.actors)

    def first_started(self) -> int:
        return min((s for s in self.actors if s not in self.starting), default=min(self.actors))

    def replace(self, slot: int) -> bool:
        """After slot's actor died: a new actor if the cluster has room for it (True), else the
        slot dropped (False). The last actor is always replaced."""
        if len(self.actors) > 1 and not self._fits(self._needs[slot], without=slot):
            self._drop(slot)
            return False
        self._start(slot)
        return True

    def stuck(self) -> list[int]:
        """The slots whose new actor has not started and has no room to: each actor killed and
        its slot dropped, or, where no other actor runs, asked for again as the cluster now is.
        The caller sends their work again (it never ran), to the slots there are now."""
        killed, kept = [], set()
        for slot in sorted(self.starting):
            started = self._started(slot)
            if started is not None:  # up, or dead before it was: its work's error says which
                continue
            if self._fits(self._needs[slot], without=slot, also=kept):
                kept.add(slot)
                continue
            _kill(self.ray, [self.actors[slot]])
            killed.append(slot)
            if len(self.actors) > len(self.starting):  # others run: go on with them
                self._drop(slot)
            else:  # nothing runs: ask again, as the cluster is now (a classifier without GPUs left takes a CPU)
                self._start(slot)
        return killed

    def died_starting(self, slot: int) -> bool:
        """Whether slot's actor, now dead, died before it had started (its node lost as it
        started, say): the work sent to it is not to blame, and goes again without counting as
        an attempt. After MAX_FAILED_STARTS such deaths in a row it is counted (an actor that
        cannot start at all must not hold the run forever)."""
        if self._started(slot) is not False:
            return False
        self._failed_starts[slot] = self._failed_starts.get(slot, 0) + 1
        return self._failed_starts[slot] <= MAX_FAILED_STARTS

    def _started(self, slot: int) -> Optional[bool]:
        """True: slot's actor has started (or was one of the first, known to have); False: it
        died first; None: it is still starting."""
        future = self.starting.get(slot)
        if future is None:
            return True
        ready, _ = self.ray.wait([future], timeout=0)
        if not ready:
            return None
        try:
            self.ray.get(future)
        except Exception:
            return False
        del self.starting[slot]
        self._failed_starts.pop(slot, None)
        return True

    def _start(self, slot: int) -> None:
        self.actors[slot], self._needs[slot] = self._make(slot, True)
        self.starting[slot] = self.actors[slot].__ray_ready__.remote()

    def _drop(self, slot: int) -> None:
        del self.actors[slot], self._needs[slot]
        self.starting.pop(slot, None)
        notify(f"warning: the Ray cluster has lost a node (or the room for an actor): the run goes on with {plural(len(self.actors), self.what)} of the {self.started_with} it started with")

    def _fits(self, needs: dict[str, float], without: int, also: Collection[int] = ()) -> bool:
        """Whether the cluster's resources hold ``needs`` beside the pool's started actors (and
        the starting ones in ``also``)."""
        total = self.ray.cluster_resources()
        holding = [s for s in self.actors if s != without and (s not in self.starting or s in also)]
        for resource, amount in needs.items():
            taken = sum(self._needs[s].get(resource, 0) for s in holding)
            if amount and total.get(resource, 0) - taken < amount:
                return False
        return True


class RayBackend:
    """Runs the task in ``num_actors`` Ray actors (None: one per CPU of the cluster)."""

    def __init__(self, task: Any, num_actors: Optional[int] = None, address: Optional[str] = None) -> None:
        self.ray = connect(address)
        self.task = task
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        remote = self.ray.remote(num_cpus=1, max_restarts=0)(_Actor)
        self.pool = _Pool(self.ray, lambda slot, replacing: (remote.remote(task), {"CPU": 1}), max(1, num_actors if num_actors else cpus), "reading actor")

    def pids(self) -> list[int]:
        """The actors' worker processes (tests kill one)."""
        return self.ray.get([actor.pid.remote() for actor in self.pool.actors.values()])

    def map(self, items: Sequence[Item]) -> Iterator[Any]:
        ray, pool = self.ray, self.pool
        queue = deque(items)
        suspects: deque[Item] = deque()  # in flight when their actor died: each run again alone
        running: dict[Any, tuple[Item, int]] = {}  # future -> (item, actor slot)
        alone: set[Any] = set()
        load = {slot: 0 for slot in pool.live()}
        while queue or suspects or running:
            if suspects:
                if not running:
                    item, slot = suspects.popleft(), pool.first_started()
                    future = pool.actors[slot].run.remote(item)
                    running[future] = (item, slot)
                    load[slot] += 1
                    alone.add(future)
            else:
                for slot in pool.live():
                    while queue and load[slot] < IN_FLIGHT_PER_ACTOR:
                        item = queue.popleft()
                        running[pool.actors[slot].run.remote(item)] = (item, slot)
                        load[slot] += 1
            done, _ = ray.wait(list(running), num_returns=1, timeout=RECHECK_SECONDS if pool.starting else None)
            for slot in pool.stuck():  # its new actor never started: its items are sent again, unrun
                if slot in pool.actors:
                    load[slot] = 0
                else:
                    del load[slot]
                for future in [f for f, (_, s) in running.items() if s == slot]:
                    (suspects if future in alone else queue).appendleft(running.pop(future)[0])
                    alone.discard(future)
            for future in done:
                if future not in running:  # its actor's slot was dropped just now
                    continue
                item, slot = running.pop(future)
                load[slot] -= 1
                try:
                    result = ray.get(future)
                except _actor_died(ray) as error:
                    unstarted = pool.died_starting(slot)
                    for other in [f for f, (_, s) in running.items() if s == slot]:  # the same actor's other items died with it
                        (queue if unstarted and other not in alone else suspects).appendleft(running.pop(other)[0])
                        alone.discard(other)
                    if pool.replace(slot):
                        load[slot] = 0
                    else:
                        del load[slot]
                    if unstarted:  # nothing ran: the items go again as they were
                        (suspects if future in alone else queue).appendleft(item)
                        alone.discard(future)
                    elif future in alone:
                        alone.discard(future)
                        yield self.task.crashed(item, _death_reason(error))
                    else:
                        suspects.append(item)
                    continue
                alone.discard(future)
                yield result

    def close(self, wait: bool = True) -> None:
        _kill(self.ray, list(self.pool.actors.values()))
        self.pool.actors.clear()

    def __enter__(self) -> "RayBackend":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(wait=exc_type is None)


# -- the classifier in actors ----------------------------------------------------------------

CLASSIFIER_BATCHES_PER_ACTOR = 2  # one classifying, one waiting
CLASSIFIER_ATTEMPTS = 2  # a batch whose actor dies is sent again once, to a new actor


class _ClassifierActor:
    """What runs in a Ray worker: the command's classifier, loaded once, on the GPU Ray gave the
    actor (CUDA_VISIBLE_DEVICES) or else on the node's CPU cores."""

    def __init__(self, load: Any, classify: Any, on_gpu: bool, defined_in: Optional[str]) -> None:
        import importlib

        from kifaru.runtime.device import usable_cores

        if defined_in:
            importlib.import_module(defined_in)  # registers the model class (one outside kifaru too)
        # Ray gives an actor without CPUs of its own one thread; the classifier runs beside the
        # loading actors, as a local run's classifier runs beside its loading processes.
        os.environ["OMP_NUM_THREADS"] = str(usable_cores())
        self.device = "cpu"
        self.gpu_problem = ""
        if on_gpu:
            import torch

            if torch.cuda.is_available():
                self.device = "cuda"
            else:
                self.gpu_problem = "Ray gave it a GPU, but PyTorch sees no CUDA device there"
        self.classifier = load(self.device)
        self._classify = classify

    def describe(self) -> dict[str, Any]:
        import ray

        return {
            "node": ray.get_runtime_context().get_node_id(),
            "gpu_ids": [str(gpu) for gpu in ray.get_gpu_ids()],
            "device": self.device,
            "gpu_problem": self.gpu_problem,
            "runtime_choice": getattr(self.classifier, "runtime_choice", None),
            "num_frames": getattr(self.classifier, "num_frames", None),
        }

    def classify(self, inputs: list[Any]) -> list[Any]:
        return self._classify(self.classifier, inputs)

    def pid(self) -> int:
        return os.getpid()


class RayClassifiers:
    """The classifier in actors on the Ray cluster: one per GPU where the cluster has GPUs
    (``num_gpus=1`` each; not with ``use_gpus`` False, a command's ``gpus: 0``), else one per
    node on its CPU cores. They take no CPU of their own, so that every CPU keeps a loading actor
    (an actor waiting for a CPU would never start).

    The contract of :class:`kifaru.runs.classifiers.ClassifierHere`: ``submit(batch)``, then
    ``completed(wait)`` gives each item with its result. A batch whose actor dies is sent again
    to a new actor; if that one dies too, its items get the reason.
    """

    def __init__(
        self,
        load: Any,
        classify: Any,
        inputs_of: Any,
        model_class: str,
        address: Optional[str] = None,
        use_gpus: bool = True,
    ) -> None:
        from kifaru.models.model_classes import MODEL_CLASSES

        self.ray = ray = connect(address)
        self.inputs_of = inputs_of
        entry = MODEL_CLASSES.get(model_class)
        defined_in = entry.build.__module__ if entry is not None else None
        gpus = int(ray.cluster_resources().get("GPU", 0)) if use_gpus else 0
        self.on_gpu = gpus > 0
        remote = ray.remote(max_restarts=0)(_ClassifierActor)
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]

        def make(slot: int, replacing: bool) -> tuple[Any, dict[str, float]]:
            if self.on_gpu and (not replacing or ray.cluster_resources().get("GPU", 0) >= 1):
                options, needs, on_gpu = dict(num_cpus=0, num_gpus=1), {"GPU": 1.0}, True
            elif self.on_gpu:
                notify("warning: the Ray cluster has no GPU left: the classifier goes on on a node's CPU cores")
                options, needs, on_gpu = dict(num_cpus=0), {}, False
            else:
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

                # On its node (Ray puts actors that take no CPU on one node otherwise); a
                # replacement may go elsewhere, its node being perhaps the one lost.
                options, needs, on_gpu = dict(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(nodes[slot], soft=replacing)), {}, False
            return remote.options(**options).remote(load, classify, on_gpu, defined_in), needs

        self.pool = pool = _Pool(ray, make, gpus if self.on_gpu else len(nodes), "classifier actor")
        self.descriptions = ray.get([pool.actors[slot].describe.remote() for slot in pool.live()])
        first = self.descriptions[0]
        self.num_frames = first["num_frames"]
        self.runtime_choice = first["runtime_choice"]
        self._running: dict[Any, tuple[list[Any], int, int]] = {}  # future -> (batch, actor slot, attempt)
        self._done: list[tuple[Any, Any]] = []

    def describe(self) -> str:
        """Where the classifier runs, e.g. "2 actors, each on a GPU, in PyTorch" (said at the start)."""
        devices = sorted({d["device"] for d in self.descriptions})
        one = len(self.descriptions) == 1
        if devices == ["cuda"]:
            where = "on a GPU" if one else "each on a GPU"
        elif devices == ["cpu"]:
            where = "on its node's CPU cores" if one else "each on its node's CPU cores"
        else:
            where = "on " + " and ".join(devices)
        problems = sorted({d["gpu_problem"] for d in self.descriptions if d["gpu_problem"]})
        runtime = self.runtime_choice.describe() if self.runtime_choice is not None else "PyTorch"
        return f"{len(self.descriptions)} actor{'' if one else 's,'} {where}, in {runtime}" + (f" (on the CPU: {'; '.join(problems)})" if problems else "")

    def pids(self) -> list[int]:
        return self.ray.get([actor.pid.remote() for actor in self.pool.actors.values()])

    def submit(self, batch: list[Any], attempt: int = 1) -> None:
        while len(self._running) >= CLASSIFIER_BATCHES_PER_ACTOR * len(self.pool.actors):
            self._collect(wait=True, all_of_them=False)  # back-pressure: no more batches queued than actors can take
        load = {slot: 0 for slot in self.pool.live()}
        for _, slot, _ in self._running.values():
            load[slot] += 1
        slot = min(load, key=load.__getitem__)
        future = self.pool.actors[slot].classify.remote([self.inputs_of(loaded) for loaded in batch])
        self._running[future] = (batch, slot, attempt)

    def completed(self, wait: bool = False) -> list[tuple[Any, Any]]:
        """The clips classified since the last call; ``wait``: every batch submitted, waiting for them."""
        self._collect(wait=wait, all_of_them=wait)
        done, self._done = self._done, []
        return done

    def _collect(self, wait: bool, all_of_them: bool) -> None:
        ray, pool = self.ray, self.pool
        while self._running:
            ready, _ = ray.wait(list(self._running), num_returns=1, timeout=(RECHECK_SECONDS if pool.starting else None) if wait else 0)
            for slot in pool.stuck():  # its new actor never started: its batches are sent again, unrun
                for future in [f for f, (_, s, _) in self._running.items() if s == slot]:
                    batch, _, attempt = self._running.pop(future)
                    self.submit(batch, attempt)
            if not ready:
                if not wait:
                    return
                continue
            for future in ready:
                if future not in self._running:  # collected while a batch was sent again
                    continue
                batch, slot, attempt = self._running.pop(future)
                try:
                    self._done.extend(zip(batch, ray.get(future)))
                except _actor_died(ray) as error:
                    unstarted = pool.died_starting(slot)
                    pool.replace(slot)
                    # The dead actor's other batches died with it: each is sent again once, as this
                    # one (or as before, where the actor died before it started: nothing ran).
                    lost = [self._running.pop(f) for f, (_, s, _) in list(self._running.items()) if s == slot]
                    for lost_batch, _, lost_attempt in [(batch, slot, attempt), *lost]:
                        if unstarted:
                            self.submit(lost_batch, lost_attempt)
                        else:
                            self._resend(lost_batch, lost_attempt, error)
            if not all_of_them and ready:
                return

    def _resend(self, batch: list[Any], attempt: int, error: Exception) -> None:
        if attempt < CLASSIFIER_ATTEMPTS:
            self.submit(batch, attempt + 1)
        else:
            reason = _death_reason(error).replace("the Ray worker died", "the Ray worker running the classifier died")
            self._done.extend((loaded, reason) for loaded in batch)

    def close(self) -> None:
        _kill(self.ray, list(self.pool.actors.values()))
        self.pool.actors.clear()

    def __enter__(self) -> "RayClassifiers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _kill(ray: Any, actors: Sequence[Any]) -> None:
    for actor in actors:
        try:
            ray.kill(actor)
        except Exception:  # already gone with its node
            pass


def _actor_died(ray: Any) -> tuple[type[Exception], ...]:
    """The errors of a call whose actor died (its worker process, or its node)."""
    return (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError)


def _death_reason(error: Exception) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"the Ray worker died while working on it ({first[:200]}): a damaged file, a decoder bug, too little memory or a lost node"
