"""Worker processes that start without re-running the user's script.

kifaru starts its processes with "spawn", not "fork": the parent may hold threads (PyTorch,
ONNX Runtime) that fork would copy half-way. Plain spawn runs the parent's main script again in
every child, so a user's script without ``if __name__ == "__main__":`` would start its own run
in each child, which Python stops with an error, and every clip would fail. kifaru's children only
run kifaru functions, so they are started without the main script: a script needs no guard.
"""

from __future__ import annotations

import multiprocessing.context
import multiprocessing.spawn
import signal
import threading
from typing import Any, Callable, Optional

_MAIN_KEYS = ("init_main_from_path", "init_main_from_name")
_starting = threading.local()  # set while this thread starts one of kifaru's processes
_install_lock = threading.Lock()


def _install_preparation_filter() -> None:
    """Wrap multiprocessing's description of the parent so that kifaru's children leave out the
    main script. Processes started by anyone else are described as before."""
    with _install_lock:
        original = multiprocessing.spawn.get_preparation_data
        if getattr(original, "_kifaru_filter", False):
            return

        def get_preparation_data(name: str) -> dict[str, Any]:
            data = original(name)
            if getattr(_starting, "active", False):
                for key in _MAIN_KEYS:
                    data.pop(key, None)
            return data

        get_preparation_data._kifaru_filter = True  # type: ignore[attr-defined]
        multiprocessing.spawn.get_preparation_data = get_preparation_data


class _SpawnProcessWithoutMain(multiprocessing.context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        _install_preparation_filter()
        _starting.active = True
        # The child starts with SIGINT blocked (a signal mask is inherited through exec): a
        # Ctrl-C, which a terminal sends to the whole process group, must not raise
        # KeyboardInterrupt in a child still importing kifaru (a traceback among the output); the
        # parent alone decides what an interrupt does. Here it is only deferred, never lost.
        blocked = _block_sigint()
        try:
            return multiprocessing.context.SpawnProcess._Popen(process_obj)
        finally:
            _starting.active = False
            if blocked is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _block_sigint() -> Optional[set]:
    """Block SIGINT in this thread; the previous mask, or None where there are no signal masks."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no process groups to signal either
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


class _SpawnContextWithoutMain(multiprocessing.context.SpawnContext):
    Process = _SpawnProcessWithoutMain


_CONTEXT = _SpawnContextWithoutMain()


def spawn_context() -> multiprocessing.context.SpawnContext:
    """A "spawn" context whose processes do not import the parent's ``__main__`` (their targets
    must be importable functions, kifaru's own) and start with SIGINT blocked."""
    return _CONTEXT


def run_in_child(target: Callable[..., Any], *args: Any, name: str = "the process") -> Optional[str]:
    """Run ``target(*args)`` (an importable function) in a spawned child and wait for it: None
    when it returned, else why not, in words (its exception, or how the process, called ``name``
    in the reason, ended). For work that must not load PyTorch into this process, such as an ONNX
    export."""
    receive, send = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(target=_run_and_report, args=(target, args, send), daemon=True)
    child.start()
    send.close()
    try:
        problem = receive.recv()
    except EOFError:
        problem = f"{name} ended without an answer"
    child.join()
    if problem is None and child.exitcode != 0:
        problem = f"{name} exited with code {child.exitcode}"
    return problem


def _run_and_report(target: Callable[..., Any], args: tuple, send: Any) -> None:
    try:
        target(*args)
    except Exception as error:  # sent to the parent, which decides what a failure means
        send.send(f"{type(error).__name__}: {error}")
    else:
        send.send(None)
    finally:
        send.close()
