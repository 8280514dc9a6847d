"""``kifaru samples FOLDER``: a few sample clips made from real photographs."""

from __future__ import annotations

import argparse
from pathlib import Path

from kifaru.cli.exit_codes import EXIT_OK


def register(commands: argparse._SubParsersAction) -> None:
    samples = commands.add_parser("samples", help="write a few sample clips made from real photographs (needs kifaru[samples])")
    samples.add_argument("folder", type=Path, metavar="FOLDER")
    samples.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from kifaru.samples import make_samples

    for path in make_samples(args.folder):
        print(path)
    return EXIT_OK
