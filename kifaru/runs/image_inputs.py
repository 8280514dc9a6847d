"""The inputs of an image run: the photos (a folder, or a filepaths CSV with an optional
``seq_id`` column), in zamba's order, and boxes given in a MegaDetector batch file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from kifaru.exceptions import ConfigError
from kifaru.images.sequences import SEQ_ID_COLUMN
from kifaru.runs.image_tasks import GivenBox
from kifaru.runs.inputs import Item, problem_of, read_csv_rows, suffixes_from_env

if TYPE_CHECKING:
    from kifaru.config.image import ImagePredictConfig



def image_suffixes() -> frozenset[str]:
    """The suffixes taken as photos: env ``IMAGE_SUFFIXES`` (zamba's) or kifaru's list."""
    from kifaru.video.media import IMAGE_SUFFIXES

    return suffixes_from_env("IMAGE_SUFFIXES", IMAGE_SUFFIXES)


def _named(path: str, data_dir: Optional[Path]) -> str:
    """A listed photo as the outputs name it: relative paths are under data_dir, if given."""
    return path if data_dir is None or Path(path).is_absolute() else str(Path(data_dir) / path)


def input_photos(config: "ImagePredictConfig") -> tuple[list[Item], int, str]:
    """The photos, in zamba's order (sorted by path), each named as zamba names it."""
    from kifaru.runs.inputs import list_videos, read_filepaths_csv

    if config.filepaths is not None:
        listed, duplicates = read_filepaths_csv(Path(config.filepaths), "filepaths")
        names = sorted(_named(p, config.data_dir) for p in listed)
        files = [Item(i, name, Path(name), problem_of(Path(name), "photo")) for i, name in enumerate(names)]
        if all(f.problem == "no such file" for f in files):
            raise ConfigError(
                f"filepaths {config.filepaths}: none of its {len(files)} files exist (e.g. {files[0].path}). "
                "Give absolute paths, or paths relative to data_dir."
            )
        return files, duplicates, ""
    if config.data_dir is None:
        raise ConfigError("give data_dir (a folder of photos) or filepaths (a CSV with a 'filepath' column)")
    listing = list_videos(Path(config.data_dir), image_suffixes())
    if not listing.videos:
        raise ConfigError(f"data_dir {config.data_dir}: no photos found in it (searched recursively; suffixes {', '.join(sorted(image_suffixes()))})")
    names = sorted(str(p.resolve()) for p in listing.videos)
    return [Item(i, name, Path(name), problem_of(Path(name), "photo")) for i, name in enumerate(names)], 0, listing.describe_ignored()


def given_sequence_ids(filepaths: Optional[Path], data_dir: Optional[Path]) -> dict[str, str]:
    """Photo name -> seq_id, from the filepaths CSV's ``seq_id`` column (none: {}). A listed
    photo without one is refused: half-given sequences would be silently mixed with guessed ones."""
    if filepaths is None:
        return {}
    columns, records = read_csv_rows(filepaths, "filepaths")
    if SEQ_ID_COLUMN not in columns:
        return {}
    rows = [(row.get("filepath") or "", (row.get(SEQ_ID_COLUMN) or "").strip()) for row in records]
    rows = [(path, seq_id) for path, seq_id in rows if path]
    missing = [path for path, seq_id in rows if not seq_id]
    if missing:
        raise ConfigError(f"filepaths {filepaths}: {len(missing)} rows have no {SEQ_ID_COLUMN} (e.g. {missing[0]}); give one for every photo, or drop the column")
    given: dict[str, str] = {}
    for path, seq_id in rows:
        name = _named(path, data_dir)
        if given.setdefault(name, seq_id) != seq_id:
            raise ConfigError(f"filepaths {filepaths}: {path} is listed with two {SEQ_ID_COLUMN}s ({given[name]}, {seq_id}); a photo belongs to one sequence")
    return given


def given_boxes(path: Path, files: Sequence[Item], root: Optional[Path], base: Path) -> dict[str, list[GivenBox]]:
    """Boxes from a MegaDetector batch file, by item name. Its ``file`` entries are paths relative
    to the folder Timelapse opens, where such a file is kept: they are matched to the photos by
    their path relative to the file's own folder, else to ``root`` (the data folder)."""
    from kifaru.outputs.paths import absolute

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        entries = data["images"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"detections file {path}: not a MegaDetector batch output file ({error})") from None
    by_file: dict[str, list[GivenBox]] = {}
    for entry in entries:
        boxes = []
        for detection in entry.get("detections") or []:
            try:
                boxes.append(([float(v) for v in detection["bbox"]], float(detection["conf"]), str(detection["category"])))
            except (KeyError, TypeError, ValueError) as error:
                raise ConfigError(f"detections file {path}: a detection of {entry.get('file')} has no usable bbox/conf/category ({error})") from None
        by_file[str(entry.get("file", "")).replace("\\", "/")] = boxes
    folders = [absolute(str(Path(path).parent), base)] + ([Path(root).resolve()] if root is not None else [])
    given = {}
    for item in files:
        photo = absolute(item.name, base)
        for folder in folders:
            key = photo.relative_to(folder).as_posix() if photo.is_relative_to(folder) else None
            if key in by_file:
                given[item.name] = by_file[key]
                break
    if files and not given:
        raise ConfigError(
            f"detections file {path}: none of its {len(by_file)} entries names one of the photos "
            f"(paths relative to {' or '.join(map(str, folders))})"
        )
    return given
