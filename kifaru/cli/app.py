"""``main(argv)``: parses the command line, runs the command, and turns the library's typed
exceptions into messages and exit codes, here and nowhere else."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any, Iterator, Optional, Sequence

from kifaru import __version__
from kifaru.cli.commands import COMMANDS
from kifaru.cli.display import NoticePrinter
from kifaru.cli.exit_codes import EXIT_CODES_HELP, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from kifaru.exceptions import ConfigError, KifaruError
from kifaru.notices import listening
from kifaru.progress import plural


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kifaru", description="Find the animals in camera-trap videos (zamba-compatible).", epilog=EXIT_CODES_HELP
    )
    parser.add_argument("--version", action="version", version=f"kifaru {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    for command in commands.choices.values():  # the same codes for every command, in its --help too
        command.epilog = EXIT_CODES_HELP
    return parser


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a cluster's scheduler at the end of a job's time, `kill`) stops a run as Ctrl-C
    does: what is finished gets its outputs. Python turns only SIGINT into KeyboardInterrupt."""
    import signal
    import threading

    from kifaru.exceptions import Interrupted

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted_message(interrupt: KeyboardInterrupt, argv: Optional[Sequence[str]]) -> str:
    """What was stopped, what was written for the files finished, and how to continue."""
    import shlex

    name = getattr(interrupt, "signal_name", "SIGINT")
    message = "interrupted" + (" (Ctrl-C)" if name == "SIGINT" else f" ({name})")
    done, total = getattr(interrupt, "done", None), getattr(interrupt, "total", None)
    if done is None or total is None:
        return message
    message += f": {done} of {plural(total, 'file')} finished"
    outputs = getattr(interrupt, "outputs", {})
    if not outputs:
        return message + "; nothing was saved"
    written = ", ".join(str(path) for path in outputs.values())
    command = shlex.join(["kifaru", *(sys.argv[1:] if argv is None else map(str, argv))])
    return (
        f"{message}; partial outputs, for those only: {written}\n"
        f"to continue, run the same command again (finished files are not done again):\n  {command}"
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, --version, or a usage error argparse already printed
        return exit.code if isinstance(exit.code, int) else EXIT_USAGE
    try:
        with listening(NoticePrinter()), _sigterm_interrupts():
            return args.handler(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KifaruError as error:  # a file that cannot be used, among others
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (_sigterm_interrupts)
        print(_interrupted_message(interrupt, argv), file=sys.stderr)
        return EXIT_INTERRUPTED
