"""Files in DrivenData's public S3 buckets (zamba's official video models), downloaded over plain
HTTPS and checked against their S3 ETag.

No sha256 of these files is published, so the integrity check is the one S3 itself provides: the
ETag of an object uploaded in one piece is the MD5 of its bytes; that of a multipart upload is
``<MD5 of the concatenated binary MD5s of the parts>-<number of parts>``, which depends on the part
size the uploader used (8 MiB for boto3 and so for cloudpathlib and the AWS CLI). The ETag is
recorded when the download starts and sent back as ``If-Range`` when it resumes, so the bytes of
two versions of an object are never joined.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from email.message import Message
from pathlib import Path
from typing import Optional, Union

from kifaru.config.base import did_you_mean
from kifaru.exceptions import ConfigError, IntegrityError
from kifaru.models.download import CHUNK, download_file, part_path

# Region -> bucket, as zamba's ``download_weights`` names them.
S3_BUCKETS = {
    "us": "drivendata-public-assets",
    "eu": "drivendata-public-assets-eu",
    "asia": "drivendata-public-assets-asia",
}
# A folder (URL) holding the files instead of the buckets: a mirror, or a local test server.
MODELS_URL_ENV = "KIFARU_MODELS_URL"

MIB = 1 << 20
DEFAULT_PART_SIZE = 8 * MIB  # boto3's TransferConfig default, so cloudpathlib's and the AWS CLI's
# Part sizes other tools default to, tried before the other sizes consistent with the part count.
COMMON_PART_SIZES = tuple(m * MIB for m in (8, 16, 5, 15, 10, 32, 64, 50, 100, 128, 256, 512))
MAX_PART_SIZES_TRIED = 24  # each size costs a pass over the file; past these, give up

_PLAIN_ETAG = re.compile(r'"?([0-9a-fA-F]{32})"?')
_MULTIPART_ETAG = re.compile(r'"?([0-9a-fA-F]{32})-(\d+)"?')

Progress = Callable[[int, Optional[int]], None]


def normalize_region(region: Union[str, object]) -> str:
    """``us``, ``eu`` or ``asia`` (a ``WeightRegion`` enum member counts as its value)."""
    value = str(getattr(region, "value", region))
    if value not in S3_BUCKETS:
        raise ConfigError(
            f"unknown weight download region '{value}'{did_you_mean(value, set(S3_BUCKETS))}; valid: {', '.join(S3_BUCKETS)}"
        )
    return value


def s3_object_url(key: str, region: str = "us") -> str:
    """The public HTTPS URL of ``key`` in the region's bucket, or under ``KIFARU_MODELS_URL`` when set
    (the mirror holds the files by name, whatever the region)."""
    region = normalize_region(region)
    mirror = os.environ.get(MODELS_URL_ENV)
    if mirror:
        return f"{mirror.rstrip('/')}/{key.rsplit('/', 1)[-1]}"
    return f"https://{S3_BUCKETS[region]}.s3.amazonaws.com/{key}"


# -- the ETag check --------------------------------------------------------------------------------


def _etag_value(etag: str) -> str:
    return etag.strip().strip('"').lower()


def is_checkable_etag(etag: Optional[str]) -> bool:
    """Whether ``etag`` has the form of an S3 MD5 ETag (plain or multipart)."""
    return bool(etag) and bool(_PLAIN_ETAG.fullmatch(etag.strip()) or _MULTIPART_ETAG.fullmatch(etag.strip()))


def multipart_md5(path: Path, part_size: int) -> tuple[str, int]:
    """(``<hex>`` of S3's multipart ETag for ``part_size``-byte parts, number of parts)."""
    digests = []
    with open(path, "rb") as handle:
        while True:
            part = hashlib.md5()
            left = part_size
            while left:
                chunk = handle.read(min(CHUNK, left))
                if not chunk:
                    break
                part.update(chunk)
                left -= len(chunk)
            if left == part_size:  # nothing read: the file ended at the last part boundary
                break
            digests.append(part.digest())
            if left:
                break
    return hashlib.md5(b"".join(digests)).hexdigest(), len(digests)


def candidate_part_sizes(size: int, parts: int) -> list[int]:
    """Whole-MiB part sizes that split ``size`` bytes into exactly ``parts`` parts: the usual tools'
    defaults first, then the rest from the smallest; at most ``MAX_PART_SIZES_TRIED``."""
    if parts < 1 or size < parts:
        return []
    if parts == 1:
        return [max(size, 1)]  # one part: any part size at least the file's gives the same ETag
    lowest = math.ceil(size / parts / MIB)  # ceil(size / p) == parts  <=>  size/parts <= p < size/(parts-1)
    highest = (size - 1) // ((parts - 1) * MIB)
    consistent = range(max(lowest, 1) * MIB, highest * MIB + 1, MIB)
    ordered = [p for p in COMMON_PART_SIZES if p in consistent]
    ordered += [p for p in consistent if p not in ordered][: MAX_PART_SIZES_TRIED]
    return ordered[:MAX_PART_SIZES_TRIED]


def verify_s3_etag(path: Path, etag: str, *, source: str) -> str:
    """Check ``path`` against an S3 ETag; return what was checked, in words (for the record).

    Raises ``IntegrityError`` (naming ``path`` and ``source``) when no reading of the ETag matches.
    ``etag`` must be checkable (:func:`is_checkable_etag`).
    """
    path = Path(path)
    hint = (
        f"Downloaded from {source}; the copy was deleted. Run again to download it afresh; if it fails "
        "again, the file there is not the one its ETag describes: download it another way and import it "
        "with `--weights FILE`."
    )
    plain = _PLAIN_ETAG.fullmatch(etag.strip())
    if plain:
        digest = hashlib.md5()
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != plain.group(1).lower():
            raise IntegrityError(path, _etag_value(etag), digest.hexdigest(), hint=hint, what="MD5 (S3 ETag)")
        return "MD5 (S3 ETag)"
    multipart = _MULTIPART_ETAG.fullmatch(etag.strip())
    if not multipart:
        raise ValueError(f"not an S3 MD5 ETag: {etag!r}")
    expected, parts = multipart.group(1).lower(), int(multipart.group(2))
    sizes = candidate_part_sizes(path.stat().st_size, parts)
    first = None
    for part_size in sizes:
        actual, count = multipart_md5(path, part_size)
        first = first or f"{actual}-{count} with {part_size / MIB:g} MiB parts"
        if actual == expected and count == parts:
            return f"multipart MD5 (S3 ETag, {part_size / MIB:g} MiB parts)"
    if first is None:
        found = f"a file of {path.stat().st_size} bytes that no whole-MiB part size splits into {parts} parts"
    else:
        found = f"{first} ({len(sizes)} part size{'s' * (len(sizes) > 1)} tried: {', '.join(f'{p / MIB:g}' for p in sizes)} MiB)"
    raise IntegrityError(path, _etag_value(etag), found, hint=hint, what="multipart MD5 (S3 ETag)")


# -- the download ----------------------------------------------------------------------------------


def _state_path(dest: Path) -> Path:
    """Beside the ``.part``: the ETag its bytes were downloaded under (to resume with If-Range)."""
    part = part_path(dest)
    return part.with_name(part.name + ".json")


def download_s3_object(
    url: str,
    dest: Path,
    *,
    progress: Optional[Progress] = None,
    offline_hint: Optional[str] = None,
    timeout: float = 60,
    expected_sha256: Optional[str] = None,
) -> dict[str, object]:
    """Download ``url`` to ``dest`` (resuming an earlier attempt) and check it against its ETag
    (and ``expected_sha256`` when one is known).

    Returns the record of the download: ``url``, ``etag``, ``size`` and ``etag_check`` (what was
    checked, in words; for a server without an S3-style ETag, a mirror say, it says the bytes were
    not checksummed). A mismatch raises ``IntegrityError`` and leaves nothing at ``dest``; network
    failures raise ``DownloadError`` and keep the partial file to resume from.
    """
    dest = Path(dest)
    part, state_path = part_path(dest), _state_path(dest)
    recorded = _read_state(state_path) if part.exists() else None
    if part.exists() and not (recorded and not recorded.startswith("W/")):
        # Bytes of unknown version (If-Range needs a strong ETag): resuming them could join two
        # versions of the file.
        part.unlink()
    seen: dict[str, Optional[str]] = {}

    def on_response(status: int, headers: Message) -> None:
        etag = headers.get("ETag")
        seen["etag"] = etag
        # Written before the body, so an interrupted download resumes under the right ETag.
        state_path.parent.mkdir(parents=True, exist_ok=True)
        state_path.write_text(json.dumps({"url": url, "etag": etag}))

    try:
        download_file(
            url,
            dest,
            progress=progress,
            timeout=timeout,
            offline_hint=offline_hint,
            if_range=recorded if part.exists() else None,
            on_response=on_response,
            expected_sha256=expected_sha256,
        )
    except IntegrityError:
        state_path.unlink(missing_ok=True)  # the .part is gone too: the next attempt starts afresh
        raise
    etag = seen["etag"] if "etag" in seen else recorded  # a complete .part (416) brings no new headers
    state_path.unlink(missing_ok=True)
    if is_checkable_etag(etag):
        try:
            check = verify_s3_etag(dest, etag, source=url)
        except IntegrityError:
            dest.unlink(missing_ok=True)
            raise
    else:
        check = f"no checksum: the server's ETag ({etag or 'none'}) is not an S3 MD5"
    return {"url": url, "etag": etag, "size": dest.stat().st_size, "etag_check": check}


def _read_state(path: Path) -> Optional[str]:
    try:
        etag = json.loads(path.read_text()).get("etag")
    except (OSError, ValueError, AttributeError):
        return None
    return etag if isinstance(etag, str) else None
