"""The visual report of a finished run: ``report.html`` and its thumbnails, made from the run's
records (``kifaru_results.jsonl``) by :func:`write_report`.

The page (:mod:`kifaru.report.page`) shows counts per class, a gallery grouped by top class with
each file's best frame and its boxes (:mod:`kifaru.report.thumbnails`), the top classes and their
probabilities and when the animal is seen, the files to review, and the files that failed with
their reasons.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from kifaru.exceptions import ConfigError
from kifaru.files import write_text_atomically
from kifaru.outputs.paths import absolute
from kifaru.outputs.results_file import RunResults, read_results
from kifaru.outputs.summaries import DEFAULT_REVIEW_BELOW, FileSummary, summarize
from kifaru.report.page import CARD_CLASSES, render_page
from kifaru.report.thumbnails import make_thumbnail

REPORT_HTML = "report.html"
THUMBNAILS = "report_files"


@dataclass
class Report:
    path: Path
    cards: int  # files shown
    failures: int  # files that could not be read in the run
    without_picture: int  # files shown without a thumbnail (moved, or unreadable now)
    page_bytes: int
    thumbnail_bytes: int


def write_report(results_dir: Path, out: Optional[Path] = None, *, review_below: float = DEFAULT_REVIEW_BELOW, workers: Optional[int] = None) -> Report:
    """Write the report of the run in ``results_dir`` to ``out`` (default ``results_dir/report.html``),
    thumbnails in ``report_files/`` beside it. ConfigError when the folder holds no results."""
    from kifaru.runtime.device import usable_cores

    results = read_results(results_dir)
    out = Path(out) if out is not None else Path(results_dir) / REPORT_HTML
    thumbs = out.parent / THUMBNAILS
    entries = [(part, summarize(record, part.description, review_below=review_below)) for part in results for record in part.records]
    shown = [(part, s) for part, s in entries if not s.failed]
    with ThreadPoolExecutor(max_workers=workers or usable_cores()) as pool:
        pictures = list(pool.map(lambda entry: make_thumbnail(entry[1], _path_of(entry[1].item, entry[0]), thumbs), shown))
    cards = [card(s, _shown_name(s.item, part), thumb, nopic) for (part, s), (thumb, nopic) in zip(shown, pictures)]
    failures = [{"file": _shown_name(s.item, part), "stage": s.stage, "reason": s.reason} for part, s in entries if s.failed]
    title = f"kifaru report: {Path(results_dir).resolve().name}"
    page = render_page(title, [run_line(part) for part in results], cards, failures, THUMBNAILS)
    write_text_atomically(out, page)
    used = {c["thumb"] for c in cards if c["thumb"]}
    return Report(
        out,
        len(cards),
        len(failures),
        sum(1 for c in cards if not c["thumb"]),
        out.stat().st_size,
        sum((thumbs / name).stat().st_size for name in used),
    )


def card(summary: FileSummary, name: str, thumb: Optional[str], nopic: Optional[str]) -> dict[str, Any]:
    """What one card shows (the page's data)."""
    # Each visit, with its own species where an image classifier labelled its crops.
    seen = [[round(s.start, 2), round(s.end, 2), s.species if s.species_from == "crops" else None] for s in summary.segments] or None
    return {
        "file": name,
        "label": summary.label,
        "classes": [[n, round(p, 4)] for n, p in summary.classes[:CARD_CLASSES]],
        "probability": None if summary.probability is None else round(summary.probability, 4),
        "detector": None if summary.animal_seen is None else round(summary.max_confidence, 4),
        "seen": seen,
        "taken": summary.taken,
        "review": list(summary.review),
        "notes": list(summary.notes),
        "thumb": thumb,
        "nopic": nopic,
    }


def run_line(part: RunResults) -> dict[str, Any]:
    run = part.description
    words = [f"kifaru {part.kifaru_version} {run.command}"]
    if run.model:
        words.append(f"model {run.model}")
    if run.animal_threshold() is not None:
        words.append(f"detector threshold {run.animal_threshold():g}")
    words.append(f"{len(part.records)} files")
    if run.partial is not None:
        words.append(f"interrupted: {run.partial[0]} of {run.partial[1]} files done")
    made = datetime.fromtimestamp(part.path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    words.append(f"results of {made}")
    return {"text": ", ".join(words)}


def _path_of(item: str, part: RunResults) -> Path:
    return absolute(item, part.description.base)


def _shown_name(item: str, part: RunResults) -> str:
    try:
        return part.relative_name(item)
    except ConfigError:  # a file outside the run's root (never written so by kifaru): shown as given
        return item
