"""``kifaru config check FILE.yaml``: validate a config and print it resolved."""

from __future__ import annotations

import argparse
from pathlib import Path

from kifaru.cli.exit_codes import EXIT_OK
from kifaru.config import dump_config, load_config_file


def register(commands: argparse._SubParsersAction) -> None:
    config = commands.add_parser("config", help="work with configuration files")
    actions = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate a YAML config and print it resolved")
    check.add_argument("file", type=Path, metavar="FILE.yaml")
    check.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = load_config_file(args.file)
    print(f"# {args.file}: valid. Resolved configuration:")
    print(dump_config(config), end="")
    return EXIT_OK
