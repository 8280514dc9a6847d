"""Who runs a run's tasks: this process, or local worker processes with crash isolation.

A task is a picklable object: ``start()`` once in the process that runs it (load the detector),
``task(item)`` for each item (it never raises for a bad file: it returns a failure record),
``crashed(item, reason)`` for the result of an item whose worker died, and ``close()``.
The backend is the only part of kifaru that knows about processes. Results come back in the order
they complete; every item gets exactly one.

Crash isolation: an item that kills its worker process (a decoder segfault, ``os._exit``, an
out-of-memory kill) does not stop the run. The pool is restarted, the items that were in flight
are run again one at a time, and the one that kills its worker again, alone, gets
``task.crashed(item, reason)``: a failure record saying the worker died and how.
"""

from __future__ import annotations

import os
import signal
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Iterator, Optional, Protocol, Sequence

from kifaru.runtime.memory import release_freed_memory
from kifaru.runtime.processes import spawn_context
from kifaru.runs.inputs import Item


class Task(Protocol):
    def start(self) -> None: ...

    def __call__(self, item: Item) -> Any: ...

    def crashed(self, item: Item, reason: str) -> Any: ...

    def close(self) -> None: ...


class InProcess:
    """Runs the task here, one item after another (tests, debugging, ``num_workers: 0``)."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self._started = False

    def map(self, items: Sequence[Item]) -> Iterator[Any]:
        if not self._started:
            self.task.start()
            self._started = True
        for item in items:
            yield self.task(item)

    def close(self, wait: bool = True) -> None:
        if self._started:
            self.task.close()
            self._started = False

    def __enter__(self) -> "InProcess":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close()


_worker_task: Any = None


def _init_worker(task: Task) -> None:
    global _worker_task
    # Ctrl-C reaches the whole process group: the main process decides what happens.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # PyTorch is imported in a worker only where a model must fall back to it: one thread each,
    # as every worker runs beside the others and the main process's model.
    os.environ["OMP_NUM_THREADS"] = "1"
    _worker_task = task
    task.start()


def _run_in_worker(item: Item) -> Any:
    # The previous item's frames (tens of MB, freed once sent) would otherwise stay with the allocator.
    release_freed_memory()
    return _worker_task(item)


class WorkerPool:
    """Runs the task in ``num_workers`` spawned processes, each started once for the whole run."""

    def __init__(self, task: Task, num_workers: int) -> None:
        if num_workers < 1:
            raise ValueError(f"a worker pool needs at least one worker, not {num_workers}")
        self.task = task
        self.num_workers = num_workers
        self._pool: Optional[ProcessPoolExecutor] = self._start_pool()

    def _start_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.num_workers, mp_context=spawn_context(), initializer=_init_worker, initargs=(self.task,))

    def close(self, wait: bool = True) -> None:
        """Stop the workers; ``wait`` False: without waiting for the items they are on."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        # Stopped by an error or Ctrl-C/SIGTERM: the caller writes what is finished at once (a
        # scheduler's SIGKILL follows its SIGTERM within seconds), not after the items in flight.
        self.close(wait=exc_type is None)

    def map(self, items: Sequence[Item]) -> Iterator[Any]:
        queue = deque(items)
        suspects: deque[Item] = deque()  # in flight when a worker died: run again alone
        running: dict[Future, Item] = {}
        alone: set[Future] = set()  # submitted with nothing else in flight
        # Enough work queued to keep every worker busy, not so much that results pile up.
        window = 2 * self.num_workers
        while queue or suspects or running:
            if suspects:
                if not running:
                    item = suspects.popleft()
                    future = self._pool.submit(_run_in_worker, item)
                    running[future] = item
                    alone.add(future)
            else:
                while queue and len(running) < window:
                    item = queue.popleft()
                    running[self._pool.submit(_run_in_worker, item)] = item
            # The workers now, to tell how one died (the pool forgets them once it breaks).
            workers = list((getattr(self._pool, "_processes", None) or {}).values())
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                item = running.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool:
                    broken = True
                    if future in alone:
                        yield self.task.crashed(item, _death_reason(workers))
                    else:
                        suspects.append(item)
                alone.discard(future)
            if broken:
                suspects.extend(running.values())
                running.clear()
                alone.clear()
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._start_pool()


def _death_reason(workers: list) -> str:
    """Why a worker died, as far as its exit status tells (a signal, an exit code). ``workers``:
    the pool's processes (a private attribute of the executor: without it, the reason is still
    given, without the status)."""
    # The pool ends every worker once one has died, and its own thread reaps them: until it has
    # recorded a status, that process reads as running (its waitpid is refused to us).
    deadline = time.monotonic() + 2
    while any(p.exitcode is None for p in workers) and time.monotonic() < deadline:
        time.sleep(0.01)
    codes = [p.exitcode for p in workers if p.exitcode not in (None, 0)]
    # The pool sends SIGTERM to the workers still alive once one has died: those say nothing.
    codes = [c for c in codes if c != -signal.SIGTERM] or codes
    how = ""
    if codes:
        code = codes[0]
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            how = f" (killed by {name}{': often the system running out of memory' if -code == signal.SIGKILL else ''})"
        else:
            how = f" (it exited with status {code})"
    return f"the worker process died while working on it{how}: a damaged file, a decoder bug or too little memory"


def backend_for(task: Task, num_workers: int, backend: str = "local", ray_address: Optional[str] = None) -> Any:
    """Worker processes for ``num_workers`` > 0, else this process; ``backend`` "ray": actors on
    the Ray cluster at ``ray_address`` (:mod:`kifaru.runs.ray_backend`; one per CPU of it)."""
    if backend == "ray":
        from kifaru.runs.ray_backend import RayBackend

        return RayBackend(task, address=ray_address)
    return WorkerPool(task, num_workers) if num_workers > 0 else InProcess(task)
