"""``kifaru report RESULTS_DIR``: one HTML page of a finished run's results, to check by looking."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kifaru.cli.display import warn
from kifaru.cli.exit_codes import EXIT_OK
from kifaru.progress import plural


def register(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="an HTML page of a run's results: counts, a gallery of best frames with boxes, files to review")
    report.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="the output folder of a predict, detect or image predict run")
    report.add_argument("--out", type=Path, help="the page to write (default: RESULTS_DIR/report.html); thumbnails go beside it")
    add_review_option(report)
    report.set_defaults(handler=handle)


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """--report (and --review-below) on a command that writes results."""
    parser.add_argument("--report", action="store_true", help="also write report.html: the results to check by looking (as kifaru report)")
    add_review_option(parser)


def add_annotated_videos_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--save-annotated-videos", type=Path, metavar="DIR",
        help="also write an mp4 copy of each clip into DIR with the detector's boxes and the species drawn",
    )  # fmt: skip


def add_segment_classifier_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--segment-classifier", metavar="MODEL|FILE.ckpt",
        help="an image model (lila.science, speciesnet, or an image checkpoint) that labels each time segment from its own "
        "boxes' crops, instead of the clip's species",
    )  # fmt: skip


def resolve_segment_classifier(args: argparse.Namespace, device: str = "cpu", cache_dir: Path | None = None) -> object:
    """The --segment-classifier, fetched and read before any clip is (None when not asked)."""
    if not getattr(args, "segment_classifier", None):
        return None
    from kifaru.segments.crops import resolve_crop_classifier

    classifier = resolve_crop_classifier(args.segment_classifier, cache_dir=cache_dir, device=device if device.startswith("cuda") else "cpu")
    print(f"segments labelled by {classifier.name} ({len(classifier.species)} classes) from their boxes' crops", file=sys.stderr)
    return classifier


def report_if_asked(args: argparse.Namespace, results_dir: Path, written: bool = True) -> None:
    """The report and annotated clips a command was asked for, once its results are written."""
    if not written:
        return
    if args.report:
        print(f"wrote {make_report(results_dir, None, args.review_below)}")
    folder = getattr(args, "save_annotated_videos", None)
    if folder is not None:
        from kifaru.report.annotated import write_annotated_videos

        made = write_annotated_videos(results_dir, folder)
        for item, reason in made.failed:
            warn(f"{item}: no annotated copy: {reason}")
        print(f"wrote {plural(len(made.written), 'annotated clip')} into {folder}")


def add_review_option(parser: argparse.ArgumentParser) -> None:
    from kifaru.outputs.summaries import DEFAULT_REVIEW_BELOW

    parser.add_argument(
        "--review-below", type=float, default=DEFAULT_REVIEW_BELOW, metavar="P",
        help=f"in the report, flag files whose top probability is under P (default {DEFAULT_REVIEW_BELOW:g})",
    )  # fmt: skip


def handle(args: argparse.Namespace) -> int:
    print(f"wrote {make_report(args.results_dir, args.out, args.review_below)}")
    return EXIT_OK


def make_report(results_dir: Path, out: Path | None, review_below: float) -> Path:
    """Write the report and say where it is (the CLI's, for ``kifaru report`` and ``--report``)."""
    from kifaru.exceptions import ConfigError
    from kifaru.report import write_report

    if not 0 <= review_below <= 1:
        raise ConfigError(f"--review-below {review_below}: must be between 0 and 1")
    report = write_report(results_dir, out, review_below=review_below)
    if report.without_picture:
        warn(f"{plural(report.without_picture, 'file')} shown without a picture (the card says why: moved, or unreadable now)")
    size = (report.page_bytes + report.thumbnail_bytes) / 1e6
    print(
        f"report: {plural(report.cards, 'file')} shown"
        f"{f', {report.failures} that could not be read listed' if report.failures else ''}; {size:.1f} MB with its thumbnails",
        file=sys.stderr,
    )
    return report.path
