"""``kifaru export camtrap-dp RESULTS_DIR``: a finished run as a Camera Trap Data Package (1.0.2)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kifaru.cli.display import warn
from kifaru.cli.exit_codes import EXIT_FAILED, EXIT_OK


def register(commands: argparse._SubParsersAction) -> None:
    from kifaru.export.camtrap_dp import CAPTURE_METHODS, SAMPLING_DESIGNS

    export = commands.add_parser("export", help="a finished run in another format: camtrap-dp (Camtrap DP 1.0.2, for GBIF, Agouti, Wildlife Insights)")
    formats = export.add_subparsers(dest="format", required=True, metavar="FORMAT")
    camtrap = formats.add_parser("camtrap-dp", help="Camtrap DP 1.0.2: datapackage.json, deployments.csv, media.csv, observations.csv")
    camtrap.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="the output folder of a predict, detect or image predict run")
    camtrap.add_argument("--out", type=Path, help="the package's folder (default: RESULTS_DIR/camtrap-dp)")
    camtrap.add_argument(
        "--deployments", type=Path, metavar="CSV",
        help="your deployments (Camtrap DP columns: deploymentID, latitude, longitude, deploymentStart, deploymentEnd, ...; "
        "and folder: the camera folder each holds, when it is not the deploymentID); without it, one per camera folder, to fill in",
    )  # fmt: skip
    camtrap.add_argument("--timestamps", type=Path, metavar="CSV", help="times you give for files (columns filepath, timestamp with a time zone)")
    camtrap.add_argument("--utc-offset", metavar="+HH:MM", help="the cameras' offset from UTC, for photo times (EXIF has none)")
    camtrap.add_argument("--taxa", type=Path, metavar="CSV", help="scientific names of the model's classes (columns class, scientificName, taxonRank)")
    camtrap.add_argument("--project-title", help="the project's title (default: the results folder's name)")
    camtrap.add_argument("--contributor", action="append", default=[], metavar="NAME", help="a person or organisation to credit (repeat for each)")
    camtrap.add_argument("--sampling-design", default="opportunistic", choices=SAMPLING_DESIGNS, help="the project's sampling design (default opportunistic)")
    camtrap.add_argument("--capture-method", action="append", choices=CAPTURE_METHODS, help="how media were captured (default activityDetection)")
    camtrap.add_argument("--validate", action="store_true", help="check the tables against the Camtrap DP 1.0.2 schemas (needs frictionless)")
    camtrap.add_argument("--overwrite", action="store_true", help="replace a package already in --out")
    camtrap.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from kifaru.export.camtrap_dp import ExportSettings, export_camtrap_dp, validate_package
    from kifaru.export.taxa import read_taxa
    from kifaru.export.timestamps import parse_offset, read_given_times
    from kifaru.outputs.results_file import read_results

    given = {}
    if args.timestamps is not None:
        names = _names(read_results(args.results_dir))
        given = read_given_times(args.timestamps, names)
    settings = ExportSettings(
        deployments=args.deployments,
        timestamps=given,
        utc_offset=parse_offset(args.utc_offset) if args.utc_offset else None,
        taxa=read_taxa(args.taxa) if args.taxa else {},
        project_title=args.project_title,
        contributors=args.contributor,
        sampling_design=args.sampling_design,
        capture_method=args.capture_method or ("activityDetection",),
    )
    export = export_camtrap_dp(args.results_dir, args.out, settings, overwrite=args.overwrite)
    for message in export.warnings:
        warn(message)
    counts = ", ".join(f"{n} {table}" for table, n in export.counts.items())
    print(f"Camtrap DP 1.0.2 package: {export.folder} ({counts})", file=sys.stderr)
    if args.validate:
        errors = validate_package(export.folder)
        for error in errors[:20]:
            warn(f"not valid: {error}")
        if errors:
            print(f"{len(errors)} error(s) against the Camtrap DP 1.0.2 table schemas", file=sys.stderr)
            return EXIT_FAILED
        print("valid against the Camtrap DP 1.0.2 table schemas", file=sys.stderr)
    return EXIT_OK


def _names(results: list) -> dict[str, str]:
    """Each file as a --timestamps CSV may name it (as the run did, or relative to its root) -> its item."""
    from kifaru.exceptions import ConfigError

    names = {}
    for part in results:
        for record in part.records:
            names[record.item] = record.item
            try:
                names[part.relative_name(record.item)] = record.item
            except ConfigError:  # outside the run's root: named as the run named it only
                pass
    return names
