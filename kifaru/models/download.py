"""Download one file over HTTP(S) with the standard library: resumable, checked, atomic.

The bytes go to ``<dest>.part`` first; a later call picks up where an interrupted one stopped
(HTTP Range), and only a complete file whose sha256 matches is renamed to ``dest``. So ``dest``
either does not exist or is the whole, right file, whatever happened in between.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from email.message import Message
from pathlib import Path

from kifaru.exceptions import OFFLINE_HINT, DownloadError, IntegrityError

CHUNK = 1 << 20
USER_AGENT = "kifaru (python urllib)"

# The network failures urllib lets through: URLError (refused, DNS, TLS, HTTP status via
# HTTPError), socket errors and timeouts (OSError) during the body, and malformed or cut-off
# responses (HTTPException, e.g. IncompleteRead, RemoteDisconnected).
NETWORK_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException)


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks so large weights do not need to fit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe_network_error(error: BaseException) -> str:
    """A short human reason for a urllib/socket failure (``str()`` of some of these is empty)."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}".rstrip()
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        return str(reason) if not isinstance(reason, BaseException) else describe_network_error(reason)
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror  # "Connection refused", "Name or service not known", TLS failures
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def full_hint(offline_hint: str | None) -> str:
    """The generic offline hint, followed by a caller's more specific one."""
    return f"{OFFLINE_HINT} {offline_hint}" if offline_hint else OFFLINE_HINT


def _content_range_total(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) from ``Content-Range: bytes a-b/total`` (``None`` where absent)."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", header or "")
    if not match:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (int(total) if total and total != "*" else None)


def part_path(dest: Path) -> Path:
    """Where :func:`download_file` keeps the bytes of ``dest`` until the download is complete."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def download_file(
    url: str,
    dest: Path,
    *,
    expected_sha256: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 60,
    offline_hint: str | None = None,
    if_range: str | None = None,
    on_response: Callable[[int, Message], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    Resumes from ``<dest>.part`` when one is there. ``progress(done, total)`` is called with
    bytes on disk so far and the full size (``None`` when the server does not say).
    ``expected_sha256`` is checked before ``dest`` appears; without it a resumed file is trusted
    to be the same file the server sent before. ``dest`` is always downloaded again, even if it
    exists: whether a present file is good enough is the caller's decision.

    Raises ``DownloadError`` (network or HTTP failure; a partial ``.part`` is kept so the next
    call resumes) and ``IntegrityError`` (checksum mismatch; the ``.part`` is deleted). Its
    messages name ``url``; ``offline_hint`` is added after the generic "download it elsewhere"
    hint, e.g. to name the option that takes a local file.

    ``if_range``: the ETag the ``.part`` was downloaded under. A resume sends it as ``If-Range`` so
    that a server whose file has changed since sends the new file whole (which replaces the
    ``.part``); a 206 answer under another ETag (a server ignoring ``If-Range``) also restarts from
    zero. ``on_response(status, headers)`` sees each answer before its body is written, so a caller
    can record the ETag to pass as ``if_range`` next time.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    hint = full_hint(offline_hint)

    # At most two requests: a resume attempt, then (if the server cannot resume) one from zero.
    for _attempt in range(2):
        offset = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if if_range:
                headers["If-Range"] = if_range
        try:
            request = urllib.request.Request(url, headers=headers)
        except ValueError as error:  # not a URL at all (no scheme, ...)
            raise DownloadError(url, str(error), hint=None) from error
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            if error.code == 416 and offset:
                # Range not satisfiable: the .part is already as long as (or longer than) the file.
                _start, total = _content_range_total(error.headers.get("Content-Range"))
                error.close()
                if total == offset:
                    if progress is not None:
                        progress(offset, total)
                    break  # complete: verify and rename below
                part.unlink()  # longer than the file, or size unknown: start over
                continue
            raise DownloadError(url, describe_network_error(error), hint=hint) from error
        except NETWORK_ERRORS as error:
            raise DownloadError(url, describe_network_error(error), hint=hint) from error

        with response:
            status = response.status or 200  # file:// answers carry no status
            length = _int_header(response.headers.get("Content-Length"))
            if on_response is not None:
                on_response(status, response.headers)
            if status == 206:
                start, total = _content_range_total(response.headers.get("Content-Range"))
                etag = response.headers.get("ETag")
                if start != offset or (if_range and etag and etag != if_range):
                    # A range we did not ask for, or of another version of the file: appending it
                    # would corrupt the file.
                    part.unlink(missing_ok=True)
                    continue
                if total is None and length is not None:
                    total = offset + length
                mode = "ab"
            else:
                # 200 to a Range request: the server ignores ranges and sends it all again.
                offset, total, mode = 0, length, "wb"
            _stream(response, part, mode, offset, total, url, hint, progress)
        break
    else:
        raise DownloadError(url, "the server's answers to range requests are inconsistent", hint=hint)

    if expected_sha256 is not None:
        actual = sha256_of(part)
        if actual != expected_sha256.lower():
            part.unlink()
            raise IntegrityError(
                dest,
                expected_sha256.lower(),
                actual,
                hint=f"Downloaded from {url}; the partial copy was deleted. Try again; if it fails "
                "again, the file at that URL is not the expected one.",
            )
    os.replace(part, dest)
    return dest


def _stream(
    response: http.client.HTTPResponse,
    part: Path,
    mode: str,
    offset: int,
    total: int | None,
    url: str,
    hint: str,
    progress: Callable[[int, int | None], None] | None,
) -> None:
    """Append the response body to ``part``; a short body raises so the next call resumes."""
    done = offset
    if progress is not None:
        progress(done, total)
    with open(part, mode) as out:
        while True:
            try:
                chunk = response.read(CHUNK)
            except NETWORK_ERRORS as error:
                raise DownloadError(
                    url, f"{describe_network_error(error)} after {done} bytes", hint=hint
                ) from error
            if not chunk:
                break
            out.write(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    # http.client ends a body cut short by a closed connection silently: check the length here.
    if total is not None and done != total:
        raise DownloadError(
            url, f"the connection closed after {done} of {total} bytes; run again to resume", hint=hint
        )
