"""One module per command, each with ``register(subparsers)`` (its options; the handler set as
the parser's default) and ``handle(args) -> exit code``. Listed here in --help's order."""

from kifaru.cli.commands import config, detect, export, frames, image, merge, models, predict, report, samples, train

COMMANDS = (config, frames, detect, predict, train, image, report, export, merge, models, samples)
