"""A finished run as a Camera Trap Data Package (Camtrap DP 1.0.2), the TDWG exchange format that
Agouti, Trapper, Wildlife Insights and GBIF read: ``datapackage.json``, ``deployments.csv``,
``media.csv`` and ``observations.csv``, made from the run's records (``kifaru_results.jsonl``).

- **Deployments**: the user's CSV (Camtrap DP columns, and optionally ``folder``: the camera
  folder under the run's root whose files it holds), or, without one, one deployment per camera
  folder, whose latitude and longitude the user must fill in (the export says so).
- **Media**: one row per video or photo, its time as :mod:`kifaru.export.timestamps` finds it.
  A file that could not be read is still a medium (its row says why); a file never found is not.
- **Observations**: media-level rows, one per time segment of a clip (its start and end, its
  best box) and one per classified crop of a photo, a ``blank`` row where nothing was seen, an
  ``unclassified`` row where the file could not be read; event-level rows, one per sequence of
  photos (bursts), classified by the sequence's combined scores. Every row is classified by
  ``machine``, with the model and kifaru's version in ``classifiedBy``.

Timestamps have whole seconds, as the schema requires: an event's start is rounded down and its
end up, so that the event holds every second the animal is seen.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Optional, Sequence

from kifaru.exceptions import ConfigError
from kifaru.files import write_text_atomically
from kifaru.outputs.paths import absolute
from kifaru.outputs.results_file import RunResults, read_results
from kifaru.outputs.summaries import FileSummary, summarize
from kifaru.export.taxa import OFFICIAL_TAXA, Taxon, observation_type
from kifaru.export.timestamps import MediaTime, after, camtrap_time, duration_of, media_time
from kifaru.runs.records import MEDIA_VIDEO, STAGE_FILE, Record

CAMTRAP_DP_VERSION = "1.0.2"
CAMTRAP_DP_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{CAMTRAP_DP_VERSION}"
PROFILE_URL = f"{CAMTRAP_DP_URL}/camtrap-dp-profile.json"
TABLES = ("deployments", "media", "observations")
SCHEMAS_DIR = Path(__file__).parent / "camtrap_dp_1_0_2"  # the table schemas, for validation offline
FOLDER_COLUMN = "folder"  # kifaru's: which camera folder a deployment in the user's CSV holds
REQUIRED_DEPLOYMENT_COLUMNS = ("deploymentID", "latitude", "longitude", "deploymentStart", "deploymentEnd")
SAMPLING_DESIGNS = ("simpleRandom", "systematicRandom", "clusteredRandom", "experimental", "targeted", "opportunistic")
CAPTURE_METHODS = ("activityDetection", "timeLapse")
# Media types Python's table lacks or names otherwise.
MEDIA_TYPES = {".avi": "video/x-msvideo", ".mkv": "video/x-matroska", ".mts": "video/mp2t", ".m4v": "video/mp4", ".webp": "image/webp"}


def table_fields(table: str) -> list[str]:
    """The columns of a Camtrap DP table, in the schema's order."""
    schema = json.loads((SCHEMAS_DIR / f"{table}-table-schema.json").read_text(encoding="utf-8"))
    return [f["name"] for f in schema["fields"]]


@dataclass
class ExportSettings:
    deployments: Optional[Path] = None
    timestamps: dict[str, MediaTime] = field(default_factory=dict)  # item -> a time the user gave
    utc_offset: Optional[timezone] = None  # of EXIF times, which have none
    taxa: dict[str, Taxon] = field(default_factory=dict)  # the user's, over OFFICIAL_TAXA
    project_title: Optional[str] = None
    contributors: Sequence[str] = ()
    sampling_design: str = "opportunistic"
    capture_method: Sequence[str] = ("activityDetection",)
    created: Optional[datetime] = None  # the package's time (default: now)


@dataclass
class Export:
    folder: Path
    counts: dict[str, int]  # rows per table
    warnings: list[str]  # what the user must check or fill in


@dataclass
class _Medium:
    media_id: str
    deployment: str
    record: Record
    run: RunResults
    summary: FileSummary
    relative: str  # filePath: relative to the run's root, forward slashes
    time: MediaTime


def export_camtrap_dp(results_dir: Path, out: Optional[Path] = None, settings: Optional[ExportSettings] = None, *, overwrite: bool = False) -> Export:
    """Write the package of the run in ``results_dir`` into ``out`` (default ``results_dir/camtrap-dp``)."""
    settings = settings or ExportSettings()
    results = read_results(results_dir)
    out = Path(out) if out is not None else Path(results_dir) / "camtrap-dp"
    if (out / "datapackage.json").exists() and not overwrite:
        raise ConfigError(f"{out} already holds a data package (deployments filled in there would be lost): pass --overwrite, or choose another --out")
    for settings_field, allowed, value in (("--sampling-design", SAMPLING_DESIGNS, [settings.sampling_design]), ("--capture-method", CAPTURE_METHODS, settings.capture_method)):
        bad = [v for v in value if v not in allowed]
        if bad:
            raise ConfigError(f"{settings_field} {bad[0]}: not one of {', '.join(allowed)}")
    warnings: list[str] = []
    media, left_out = _media(results, settings)
    if left_out:
        warnings.append(f"{left_out} file(s) that were never found are left out of media.csv (they are in the run's failures)")
    modified = [m for m in media if m.time.source == "file modification time"]
    if modified:
        warnings.append(
            f"{len(modified)} file(s) hold no capture time: their timestamp is the file's modification time "
            f"(check it, or give times with --timestamps), e.g. {modified[0].relative}"
        )
    deployments = _deployments(media, settings, warnings)
    observations = _observations(results, media, settings, warnings)
    taxonomic = _taxonomic(observations)
    tables = {
        "deployments": _csv(table_fields("deployments"), deployments),
        "media": _csv(table_fields("media"), [_media_row(m) for m in media]),
        "observations": _csv(table_fields("observations"), observations),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        write_text_atomically(out / f"{name}.csv", text)
    package = _package(results, settings, deployments, taxonomic, observations, Path(results_dir), warnings)
    write_text_atomically(out / "datapackage.json", json.dumps(package, indent=2, ensure_ascii=False) + "\n")
    return Export(out, {"deployments": len(deployments), "media": len(media), "observations": len(observations)}, warnings)


# -- media -------------------------------------------------------------------------------------


def _media(results: Sequence[RunResults], settings: ExportSettings) -> tuple[list[_Medium], int]:
    media, left_out, seen = [], 0, set()
    for part in results:
        run = part.description
        for record in part.records:
            if record.failed and record.stage == STAGE_FILE:
                left_out += 1
                continue
            path = absolute(record.item, run.base)
            relative = part.relative_name(record.item)
            if relative in seen:  # the same file in two results files (never written so by kifaru)
                continue
            seen.add(relative)
            time = settings.timestamps.get(record.item) or media_time(record, path, settings.utc_offset)
            if time is None:
                left_out += 1
                continue
            camera = str(PurePosixPath(relative).parent)
            deployment = camera if camera != "." else part.root.name
            media.append(_Medium(_id("m", relative), deployment, record, part, summarize(record, run), relative, time))
    return media, left_out


def _media_row(m: _Medium) -> dict[str, Any]:
    comments = [c for c in (m.time.comment(),) if c]
    if m.record.failed:
        comments.append(f"kifaru could not read it ({m.record.stage}): {m.record.reason}")
    comments += m.record.notes
    return {
        "mediaID": m.media_id,
        "deploymentID": m.deployment,
        "timestamp": camtrap_time(m.time.when),
        "filePath": m.relative,
        "filePublic": "false",
        "fileName": PurePosixPath(m.relative).name,
        "fileMediatype": media_type(m.relative, m.record.media),
        "mediaComments": "; ".join(comments),
    }


def media_type(name: str, media: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    guessed = MEDIA_TYPES.get(suffix) or mimetypes.guess_type(f"x{suffix}")[0]
    if guessed and guessed.split("/")[0] in ("image", "video"):
        return guessed
    return "video/octet-stream" if media == MEDIA_VIDEO else "image/octet-stream"


# -- deployments -------------------------------------------------------------------------------


def _deployments(media: list[_Medium], settings: ExportSettings, warnings: list[str]) -> list[dict[str, Any]]:
    cameras: dict[str, list[_Medium]] = {}
    for m in media:
        cameras.setdefault(m.deployment, []).append(m)
    if settings.deployments is not None:
        return _given_deployments(settings.deployments, cameras, warnings)
    rows = []
    for camera, files in sorted(cameras.items()):
        start = min(m.time.when for m in files)
        end = max(after(m.time.when, duration_of(m.record), up=True) for m in files)
        rows.append({
            "deploymentID": camera,
            "locationName": camera,
            "deploymentStart": camtrap_time(start),
            "deploymentEnd": camtrap_time(end),
            "timestampIssues": "true" if any(not m.time.zone_known or m.time.source == "file modification time" for m in files) else "",
            "deploymentComments": f"made by kifaru from the camera folder {camera}: start and end are its first and last file's times",
        })  # fmt: skip
    if rows:
        warnings.append(
            f"deployments.csv: {len(rows)} deployment(s), one per camera folder, without latitude and longitude: the "
            f"package is not valid Camtrap DP until they are filled in there (or give --deployments with your deployments), "
            f"and deploymentStart/End are the first and last file's times, not when the camera was set up and taken down"
        )
    return rows


def _given_deployments(path: Path, cameras: dict[str, list[_Medium]], warnings: list[str]) -> list[dict[str, Any]]:
    known = set(table_fields("deployments"))
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or ())
        rows = list(reader)
    missing = [c for c in REQUIRED_DEPLOYMENT_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in known and c != FOLDER_COLUMN]
    if missing or unknown:
        import difflib

        hints = [f"{c} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(c, known, 1)) else c for c in unknown]
        raise ConfigError(
            f"--deployments {path}: "
            + "; ".join(
                ([f"missing the column(s) {', '.join(missing)}"] if missing else [])
                + ([f"unknown column(s) {', '.join(hints)} (Camtrap DP's deployments columns, and {FOLDER_COLUMN}: the camera folder)"] if unknown else [])
            )
        )
    by_folder: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        for column in REQUIRED_DEPLOYMENT_COLUMNS:
            if not (row.get(column) or "").strip():
                raise ConfigError(f"--deployments {path}, line {line}: {column} is empty (Camtrap DP requires it)")
        folder = (row.get(FOLDER_COLUMN) or row["deploymentID"]).strip().strip("/")
        by_folder[folder] = row["deploymentID"]
    if len(rows) == 1 and FOLDER_COLUMN not in columns and set(cameras) - set(by_folder):
        by_folder = {camera: rows[0]["deploymentID"] for camera in cameras}  # one camera: every file is its
    homeless = sorted(set(cameras) - set(by_folder))
    if homeless:
        raise ConfigError(
            f"--deployments {path}: no deployment for the camera folder(s) {', '.join(homeless)}; add a row for each "
            f"(its deploymentID, or a {FOLDER_COLUMN} column, naming the folder)"
        )
    for camera, files in cameras.items():
        for m in files:
            m.deployment = by_folder[camera]
    spans = {row["deploymentID"]: (row["deploymentStart"], row["deploymentEnd"]) for row in rows}
    outside = [m.relative for files in cameras.values() for m in files if not _within(m.time.when, *spans[m.deployment])]
    if outside:
        warnings.append(f"{len(outside)} file(s) were recorded outside their deployment's start and end, e.g. {outside[0]}: check the times")
    return [{k: v for k, v in row.items() if k != FOLDER_COLUMN} for row in rows]


def _within(when: datetime, start: str, end: str) -> bool:
    try:
        begin, finish = datetime.fromisoformat(start.replace("Z", "+00:00")), datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--deployments: {start!r} or {end!r} is not an ISO 8601 time with a time zone (e.g. 2024-05-01T06:30:00Z)") from None
    if begin.tzinfo is None or finish.tzinfo is None:
        raise ConfigError(f"--deployments: {start} / {end}: deploymentStart and deploymentEnd need a time zone (Z or +HH:MM)")
    return begin <= when <= finish


# -- observations ------------------------------------------------------------------------------


def _observations(results: Sequence[RunResults], media: list[_Medium], settings: ExportSettings, warnings: list[str]) -> list[dict[str, Any]]:
    taxa = {**OFFICIAL_TAXA, **settings.taxa}
    unnamed: set[str] = set()
    rows: list[dict[str, Any]] = []
    by_item = {(id(m.run), m.record.item): m for m in media}
    for m in media:
        rows += _file_observations(m, taxa, unnamed)
    for part in results:
        if part.description.sequences is not None:
            rows += _sequence_observations(part, by_item, taxa, unnamed)
    if unnamed:
        warnings.append(f"no scientific name for the class(es) {', '.join(sorted(unnamed))}: give them with --taxa (columns class, scientificName, taxonRank)")
    return rows


def _file_observations(m: _Medium, taxa: dict[str, Taxon], unnamed: set[str]) -> list[dict[str, Any]]:
    s, record, run = m.summary, m.record, m.run.description
    base = {
        "deploymentID": m.deployment,
        "mediaID": m.media_id,
        "eventID": _event_id(m),
        "observationLevel": "media",
        "classificationMethod": "machine",
        "classifiedBy": _classified_by(m.run),
        "classificationTimestamp": camtrap_time(_results_time(m.run)),
    }
    start, end = m.time.when, after(m.time.when, duration_of(record), up=True)
    whole = {"eventStart": camtrap_time(start), "eventEnd": camtrap_time(end)}
    if record.failed:
        return [_row(m, 1, base, whole, "unclassified", comments=f"kifaru could not read it ({record.stage}): {record.reason}")]
    rows = []
    if record.media == MEDIA_VIDEO:
        for segment in s.segments:
            species = segment.species if segment.species is not None else None
            kind = "animal" if species is None else observation_type(species)
            times = {"eventStart": camtrap_time(after(start, segment.start, up=False)), "eventEnd": camtrap_time(after(start, segment.end, up=True))}
            probability = segment.probability if species is not None else segment.max_detection_confidence
            by = {**base, "classifiedBy": _crops_classified_by(m.run)} if segment.species_from == "crops" and species is not None else base
            rows.append(_row(m, len(rows) + 1, by, times, kind, species, probability, segment.best_box, taxa, unnamed, count=1,
                             comments=f"segment {segment.segment}: {segment.start:.2f}-{segment.end:.2f} s into the clip"))  # fmt: skip
        if not rows:
            if s.classes and not s.blank:  # a species without boxes to place it (no detector, or none above threshold)
                rows.append(_row(m, 1, base, whole, observation_type(s.species), s.species, s.probability, None, taxa, unnamed))
            elif s.classes or s.animal_seen is not None:
                rows.append(_row(m, 1, base, whole, "blank", None, s.probability if s.classes else None))
            else:
                rows.append(_row(m, 1, base, whole, "unclassified"))
        return rows
    # A photo: each classified crop, or each box of a detector-only run.
    crops = [c for c in record.outputs.get("crops") or [] if c.get("probabilities")]
    width, height = (record.outputs.get("image_size") or [0, 0])[:2]
    for crop in crops:
        scores = list(zip(run.species, crop["probabilities"]))
        name, probability = max(scores, key=lambda pair: pair[1])
        box = None
        if crop.get("detection") is not None and width and height:
            x1, y1, x2, y2 = crop["box"]
            box = (x1 / width, y1 / height, x2 / width, y2 / height)
        rows.append(_row(m, len(rows) + 1, base, whole, observation_type(name), name, probability, box, taxa, unnamed, count=1 if box else None))
    if not crops and not s.classes:
        for box in s.boxes:  # detect: the detector's boxes, of its own categories
            kind = {"person": "human", "vehicle": "vehicle"}.get(box.category, "animal")
            rows.append(_row(m, len(rows) + 1, base, whole, kind, None, box.score, box.box, count=1))
    if not rows:
        kind = "blank" if (s.animal_seen is not None or s.classes) else "unclassified"
        rows.append(_row(m, 1, base, whole, kind, None, s.probability))
    return rows


def _sequence_observations(part: RunResults, by_item: dict, taxa: dict[str, Taxon], unnamed: set[str]) -> list[dict[str, Any]]:
    from kifaru.outputs.sequence_csv import sequence_scores

    run = part.description
    rows = []
    for seq_id, scores in sorted(sequence_scores(part.records, run).items()):
        members = [by_item[(id(part), name)] for name in run.sequences.sequences()[seq_id] if (id(part), name) in by_item]
        if not members:
            continue
        start = min(m.time.when for m in members)
        end = max(m.time.when for m in members)
        if scores is None:  # no photo of it was classified: blank where the detector saw nothing in any
            kind, name, probability = ("blank" if all(m.summary.blank for m in members) else "unclassified"), None, None
        else:
            index = int(scores.argmax())
            name, probability = run.species[index], float(scores[index])
            kind = observation_type(name)
        base = {
            "observationID": _id("e", f"{part.path.name}:{seq_id}"),
            "deploymentID": members[0].deployment,
            "eventID": _id("s", f"{part.path.name}:{seq_id}"),
            "eventStart": camtrap_time(start),
            "eventEnd": camtrap_time(end),
            "observationLevel": "event",
            "observationType": kind,
            "classificationMethod": "machine",
            "classifiedBy": _classified_by(part),
            "classificationTimestamp": camtrap_time(_results_time(part)),
            "classificationProbability": "" if probability is None else round(probability, 4),
            "observationComments": f"sequence {seq_id} of {len(members)} photo(s), scores combined by {run.aggregation}",
        }
        base.update(_taxon(kind, name, taxa, unnamed))
        rows.append(base)
    return rows


def _row(
    m: _Medium, number: int, base: dict[str, Any], times: dict[str, str], kind: str, name: Optional[str] = None,
    probability: Optional[float] = None, box: Optional[Sequence[float]] = None, taxa: Optional[dict[str, Taxon]] = None,
    unnamed: Optional[set[str]] = None, count: Optional[int] = None, comments: str = "",
) -> dict[str, Any]:  # fmt: skip
    row = {**base, **times, "observationID": f"{m.media_id}-{number}", "observationType": kind}
    if kind in ("blank", "unclassified"):
        row.pop("classificationProbability", None)
    if probability is not None and kind != "unclassified":
        row["classificationProbability"] = round(float(probability), 4)
    if kind == "unclassified":
        for key in ("classificationMethod", "classifiedBy", "classificationTimestamp"):
            row.pop(key, None)
    row.update(_taxon(kind, name, taxa or {}, unnamed if unnamed is not None else set()))
    if count is not None and kind in ("animal", "human"):
        row["count"] = count
    if box is not None:
        x1, y1, x2, y2 = (min(max(float(v), 0.0), 1.0) for v in box)
        if x2 > x1 and y2 > y1:
            row.update(bboxX=round(x1, 4), bboxY=round(y1, 4), bboxWidth=max(round(x2 - x1, 4), 1e-4), bboxHeight=max(round(y2 - y1, 4), 1e-4))
    notes = [c for c in (comments, f"class {name}" if name is not None and kind != "blank" else "") if c]
    if notes:
        row["observationComments"] = "; ".join(notes)
    return row


def _taxon(kind: str, name: Optional[str], taxa: dict[str, Taxon], unnamed: set[str]) -> dict[str, Any]:
    if kind not in ("animal", "human") or name is None:
        return {}
    taxon = taxa.get(name)
    if taxon is None or not taxon.scientific_name:
        unnamed.add(name)
        return {}
    return {"scientificName": taxon.scientific_name, "_rank": taxon.rank}


def _event_id(m: _Medium) -> str:
    run = m.run.description
    if run.sequences is not None and m.record.item in run.sequences.seq_ids:
        return _id("s", f"{m.run.path.name}:{run.sequences.seq_ids[m.record.item]}")
    return m.media_id


def _classified_by(part: RunResults) -> str:
    run = part.description
    if run.model:
        words = f"kifaru {part.kifaru_version} {run.command}, model {run.model}"
        return words + (f" (sha256 {run.model_sha256[:12]})" if run.model_sha256 else "")
    return f"kifaru {part.kifaru_version} {run.command}, MegadetectorLite (animal or blank only)"


def _crops_classified_by(part: RunResults) -> str:
    crops = part.description.crop_classifier or {}
    sha = crops.get("sha256")
    return f"kifaru {part.kifaru_version} {part.command}, its boxes classified by {crops.get('model')}" + (f" (sha256 {sha[:12]})" if sha else "")


def _results_time(part: RunResults) -> datetime:
    return datetime.fromtimestamp(int(part.path.stat().st_mtime), timezone.utc)


# -- the package -------------------------------------------------------------------------------


def _taxonomic(observations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    taxa: dict[str, Optional[str]] = {}
    for row in observations:
        rank = row.pop("_rank", None)
        if row.get("scientificName"):
            taxa.setdefault(row["scientificName"], rank)
    return [{"scientificName": name, **({"taxonRank": rank} if rank else {})} for name, rank in sorted(taxa.items())]


def _package(
    results: Sequence[RunResults], settings: ExportSettings, deployments: list[dict[str, Any]], taxonomic: list[dict[str, Any]],
    observations: list[dict[str, Any]], results_dir: Path, warnings: list[str],
) -> dict[str, Any]:  # fmt: skip
    from kifaru import __version__

    created = settings.created or datetime.now(timezone.utc)
    title = settings.project_title or results_dir.resolve().name
    levels = ["media"] + (["event"] if any(r["observationLevel"] == "event" for r in observations) else [])
    if not settings.contributors:
        warnings.append("datapackage.json: no contributors (give --contributor NAME for each person or organisation to credit)")
    if not settings.project_title:
        warnings.append(f"datapackage.json: the project's title is the results folder's name, {title!r} (give --project-title)")
    starts = [row["deploymentStart"] for row in deployments]
    ends = [row["deploymentEnd"] for row in deployments]
    return {
        "profile": PROFILE_URL,
        "name": _slug(title),
        "created": camtrap_time(created),
        "title": title,
        "contributors": [{"title": name, "role": "contributor"} for name in settings.contributors],
        "sources": [{"title": "kifaru", "version": __version__}],
        "project": {
            "title": title,
            "samplingDesign": settings.sampling_design,
            "captureMethod": list(settings.capture_method),
            "individualAnimals": False,
            "observationLevel": levels,
        },
        "spatial": _spatial(deployments),
        "temporal": {"start": _date(min(starts)) if starts else None, "end": _date(max(ends)) if ends else None},
        "taxonomic": taxonomic,
        "resources": [
            {
                "name": table,
                "path": f"{table}.csv",
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": f"{CAMTRAP_DP_URL}/{table}-table-schema.json",
            }
            for table in TABLES
        ],
        "kifaruRuns": [{"command": r.command, "model": r.description.model, "results": r.path.name} for r in results],
    }


def _spatial(deployments: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """GeoJSON of the deployments: a point, or the box around them (None without coordinates)."""
    points = []
    for row in deployments:
        try:
            points.append((float(row["longitude"]), float(row["latitude"])))
        except (KeyError, TypeError, ValueError):
            return None
    if not points:
        return None
    if len(set(points)) == 1:
        return {"type": "Point", "coordinates": list(points[0])}
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    ring = [[min(xs), min(ys)], [max(xs), min(ys)], [max(xs), max(ys)], [min(xs), max(ys)], [min(xs), min(ys)]]
    return {"type": "Polygon", "coordinates": [ring]}


def _date(text: str) -> str:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-") or "kifaru-results"


def _id(prefix: str, text: str) -> str:
    return prefix + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def _csv(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: value for key, value in row.items() if not key.startswith("_")})
    return out.getvalue()


# -- validation --------------------------------------------------------------------------------


def validate_package(folder: Path) -> list[str]:
    """The package's errors by frictionless against the shipped 1.0.2 table schemas (offline):
    [] when it is valid. Needs ``frictionless`` (pip install frictionless)."""
    try:
        from frictionless import Package, system
    except ImportError:
        raise ConfigError("validating needs frictionless: pip install frictionless") from None
    folder = Path(folder)
    descriptor = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    descriptor.pop("profile", None)  # the Camtrap DP profile is remote: the tables are checked here
    for resource in descriptor["resources"]:
        if resource.get("name") in TABLES:
            resource["schema"] = json.loads((SCHEMAS_DIR / f"{resource['name']}-table-schema.json").read_text(encoding="utf-8"))
    with system.use_context(trusted=True):
        report = Package(descriptor, basepath=str(folder)).validate()
    return [f"{task.name}: {error.message}" for task in report.tasks for error in task.errors] + [e.message for e in report.errors]
