"""kifaru's worker processes start without running the user's script again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# A user's script without ``if __name__ == "__main__":`` that starts a child process.
UNGUARDED = """
import sys
sys.path.insert(0, {root!r})
print("script ran", flush=True)
import time
{context}
child = context.Process(target=time.sleep, args=(0,))
child.start()
child.join()
print("child exit code", child.exitcode, flush=True)
"""

ROOT = str(Path(__file__).resolve().parents[2])


def run_script(tmp_path: Path, context: str) -> subprocess.CompletedProcess:
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED.format(root=ROOT, context=context))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)


def test_children_do_not_run_the_main_script_again(tmp_path):
    done = run_script(tmp_path, "from kifaru.runtime.processes import spawn_context; context = spawn_context()")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["script ran", "child exit code 0"]


def test_plain_spawn_runs_it_again_which_is_what_spawn_context_avoids(tmp_path):
    done = run_script(tmp_path, "import multiprocessing; context = multiprocessing.get_context('spawn')")
    assert done.stdout.count("script ran") == 2  # once more in the child, which then fails
    assert "bootstrapping phase" in done.stderr


def test_other_processes_are_described_as_before():
    import multiprocessing.spawn

    from kifaru.runtime import processes

    processes._install_preparation_filter()
    data = multiprocessing.spawn.get_preparation_data("someone else's process")
    assert {"init_main_from_name", "init_main_from_path"} & set(data)  # pytest's own main


def report_sigint_handling(queue) -> None:
    """In a child: whether SIGINT is blocked there (a module-level function: spawn imports it)."""
    import signal

    queue.put(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))


def test_children_start_with_sigint_blocked_and_the_parent_keeps_its_mask():
    """A terminal's Ctrl-C reaches the whole process group: kifaru's children must not raise
    KeyboardInterrupt (a traceback while they import kifaru); the parent's Ctrl-C still works."""
    import signal

    from kifaru.runtime.processes import spawn_context

    context = spawn_context()
    queue = context.Queue()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    child = context.Process(target=report_sigint_handling, args=(queue,))
    child.start()
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before and signal.SIGINT not in before
    assert queue.get(timeout=60) is True
    child.join(timeout=60)
    assert child.exitcode == 0
