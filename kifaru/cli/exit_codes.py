"""Exit codes, the same for every command (README "Exit codes", the --help epilog)."""

EXIT_OK = 0  # every file has a result
EXIT_FAILED = 1  # the run finished but some files have failure records, or an input could not be used
EXIT_USAGE = 2  # bad command line or configuration
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT) or SIGTERM: what is finished is kept, the same command continues

EXIT_CODES_HELP = f"""\
exit codes: {EXIT_OK} every file has a result; {EXIT_FAILED} the run finished but some files have
failure records (the outputs say which and why), or an input could not be used (a file, a
download); {EXIT_USAGE} a bad command line or configuration; {EXIT_INTERRUPTED} interrupted (Ctrl-C or SIGTERM)."""


def exit_code_for(failed: int) -> int:
    """A finished run's exit code, from how many of its files have a failure record."""
    return EXIT_FAILED if failed else EXIT_OK
