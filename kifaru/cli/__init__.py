"""The ``kifaru`` command. Thin: each command (:mod:`kifaru.cli.commands`) parses its options,
calls the library and shows what it reports; the library's typed exceptions become messages and
exit codes in one place (:func:`kifaru.cli.app.main`)."""

from kifaru.cli.app import build_parser, main
from kifaru.cli.exit_codes import EXIT_CODES_HELP, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, exit_code_for

__all__ = [
    "EXIT_CODES_HELP", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "build_parser", "exit_code_for", "main",
]  # fmt: skip
