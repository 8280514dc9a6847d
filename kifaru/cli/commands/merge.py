"""``kifaru merge DIR...``: the shards of one run (``--shard I/N``) into the outputs of one run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kifaru.cli.exit_codes import exit_code_for
from kifaru.progress import plural


def register(commands: argparse._SubParsersAction) -> None:
    merge = commands.add_parser("merge", help="combine the shards of a run (--shard I/N) into the outputs of one run")
    merge.add_argument("folders", type=Path, nargs="+", metavar="DIR", help="the output folder of each shard")
    merge.add_argument("--out", type=Path, default=Path("."), help="where the merged outputs go (default: here)")
    merge.add_argument("--overwrite", action="store_true", help="replace outputs already in --out")
    merge.set_defaults(handler=handle)


def add_shard_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shard", metavar="I/N",
        help="take only shard I of N of the files (by a hash of each path: the same files on any machine, in any order; "
        "bursts of photos stay whole, by their seq_id or camera folder); "
        "kifaru merge combines the N shards' output folders",
    )  # fmt: skip


def handle(args: argparse.Namespace) -> int:
    from kifaru.runs.merge import merge_shards

    merged = merge_shards(args.folders, args.out, overwrite=args.overwrite)
    failed = sum(1 for r in merged.records if r.failed)
    print(f"merged {merged.shards} shards: {plural(len(merged.records), 'file')}, {failed} failed", file=sys.stderr)
    if merged.photos:
        photos_failed = sum(1 for r in merged.photos if r.failed)
        print(f"and the photos beside them: {plural(len(merged.photos), 'photo')}, {photos_failed} failed", file=sys.stderr)
        failed += photos_failed
    for path in merged.outputs.values():
        print(f"wrote {path}")
    return exit_code_for(failed)
