"""Take one file out of a wheel on a package index, as ``pip download NAME==VERSION --no-deps`` finds it.

Some weights are published only inside a Python package (zamba ships its YOLOX weights in its
wheel). Machines that reach only PyPI (or a mirror named by ``PIP_INDEX_URL``) can still get them
this way, without pip and without installing the package.

The index is read through the simple repository API: PEP 691 JSON when the index offers it,
else the PEP 503 HTML page.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from kifaru.exceptions import DownloadError, IntegrityError
from kifaru.files import atomic_write
from kifaru.models.download import (
    CHUNK,
    NETWORK_ERRORS,
    USER_AGENT,
    describe_network_error,
    full_hint,
    download_file,
)

DEFAULT_INDEX_URL = "https://pypi.org/simple"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_TYPE}, text/html;q=0.1"


@dataclass(frozen=True)
class WheelLink:
    """One wheel file on an index: where to get it, and its sha256 when the index gives one."""

    url: str
    filename: str
    sha256: str | None = None


def normalize_name(name: str) -> str:
    """PEP 503 project name normalisation: ``Zamba_Foo.bar`` -> ``zamba-foo-bar``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def index_url_from_environment(index_url: str | None = None) -> str:
    """``index_url`` if given, else ``PIP_INDEX_URL`` (as pip honours it), else PyPI; no trailing /."""
    return (index_url or os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX_URL).rstrip("/")


def _wheel_parts(filename: str) -> tuple[str, str, str, str, str] | None:
    """(name, version, python tags, abi tag, platform tag) of a wheel filename, or ``None``."""
    if not filename.endswith(".whl"):
        return None
    parts = filename[: -len(".whl")].split("-")
    if len(parts) not in (5, 6):  # the optional build tag makes six
        return None
    return parts[0], parts[1], parts[-3], parts[-2], parts[-1]


def _file_version(filename: str, project: str) -> str | None:
    """The version in a wheel or sdist filename of ``project`` (for error messages only)."""
    wheel = _wheel_parts(filename)
    if wheel:
        return wheel[1] if normalize_name(wheel[0]) == project else None
    for suffix in (".tar.gz", ".zip", ".tar.bz2", ".tgz"):
        if filename.endswith(suffix):
            name, _, version = filename[: -len(suffix)].rpartition("-")
            return version if normalize_name(name) == project and version else None
    return None


def _version_key(version: str) -> tuple:
    # Good enough to list versions in a sensible order without depending on `packaging`.
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+!-]", version))


class _AnchorParser(HTMLParser):
    """Collects ``<a href>`` targets (and a ``<base href>``) from a PEP 503 project page."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if href is None:
            return
        if tag == "a":
            self.hrefs.append(href)
        elif tag == "base" and self.base is None:
            self.base = href


def _link_from_url(url: str) -> WheelLink:
    """A file link from its URL, taking the sha256 from a ``#sha256=`` fragment."""
    without_fragment, fragment = urllib.parse.urldefrag(url)
    name = urllib.parse.unquote(urllib.parse.urlsplit(without_fragment).path.rsplit("/", 1)[-1])
    hashes = urllib.parse.parse_qs(fragment)
    sha256 = hashes.get("sha256", [None])[0]
    return WheelLink(url=without_fragment, filename=name, sha256=sha256.lower() if sha256 else None)


def _parse_html(text: str, page_url: str) -> list[WheelLink]:
    parser = _AnchorParser()
    parser.feed(text)
    base = urllib.parse.urljoin(page_url, parser.base) if parser.base else page_url
    return [_link_from_url(urllib.parse.urljoin(base, href)) for href in parser.hrefs]


def _parse_json(text: str, page_url: str) -> list[WheelLink]:
    links = []
    for entry in json.loads(text).get("files", []):
        # PEP 691 allows relative URLs, resolved against the page's own URL.
        url, _fragment = urllib.parse.urldefrag(urllib.parse.urljoin(page_url, entry["url"]))
        sha256 = (entry.get("hashes") or {}).get("sha256")
        links.append(WheelLink(url, entry["filename"], sha256.lower() if sha256 else None))
    return links


def list_files(
    package: str, index_url: str | None = None, *, timeout: float = 60, offline_hint: str | None = None
) -> list[WheelLink]:
    """Every file (wheels, sdists) the index lists for ``package``."""
    project = normalize_name(package)
    page_url = f"{index_url_from_environment(index_url)}/{project}/"
    request = urllib.request.Request(page_url, headers={"Accept": ACCEPT, "User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            final_url = response.geturl()  # after redirects: relative links resolve against it
            content_type = response.headers.get_content_type()
            charset = response.headers.get_content_charset() or "utf-8"
    except urllib.error.HTTPError as error:
        reason = describe_network_error(error)
        if error.code == 404:
            reason += f": the index has no project named {package!r}"
        raise DownloadError(page_url, reason, hint=full_hint(offline_hint)) from error
    except NETWORK_ERRORS as error:
        raise DownloadError(page_url, describe_network_error(error), hint=full_hint(offline_hint)) from error
    text = body.decode(charset, errors="replace")
    try:
        if content_type == JSON_TYPE or content_type.endswith("json"):
            return _parse_json(text, final_url)
        return _parse_html(text, final_url)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DownloadError(
            page_url, f"the index answered with a page that is not a simple-API project page ({error})"
        ) from error


def find_wheel(
    package: str, version: str, index_url: str | None = None, *, offline_hint: str | None = None
) -> WheelLink:
    """The pure-Python wheel (``py3-none-any``, else any ``*-none-any``) of ``package==version``.

    ``index_url`` defaults to ``PIP_INDEX_URL``, then https://pypi.org/simple. Raises
    ``DownloadError`` if the index cannot be read or has no such wheel (the message lists the
    versions it does have).
    """
    project = normalize_name(package)
    links = list_files(package, index_url, offline_hint=offline_hint)
    candidates = []
    for link in links:
        parts = _wheel_parts(link.filename)
        if not parts:
            continue
        name, file_version, python_tags, abi, platform = parts
        pure = abi == "none" and platform == "any"
        if pure and normalize_name(name) == project and file_version == version:
            # py3 (or py2.py3) first, as pip on Python 3 would pick; other pure tags after.
            candidates.append(("py3" not in python_tags.split("."), link.filename, link))
    if candidates:
        return min(candidates, key=lambda c: c[:2])[2]

    page_url = f"{index_url_from_environment(index_url)}/{project}/"
    same_version = [link.filename for link in links if _file_version(link.filename, project) == version]
    if same_version:
        reason = f"{package} {version} has no pure-Python (none-any) wheel there, only: " + ", ".join(
            same_version[:8]
        )
    else:
        found = {_file_version(link.filename, project) for link in links} - {None}
        versions = sorted(found, key=_version_key)
        shown = ", ".join(versions[-10:]) if versions else "none"
        more = f" (latest 10 of {len(versions)})" if len(versions) > 10 else ""
        reason = f"no {package} {version} there; versions it has{more}: {shown}"
    raise DownloadError(page_url, reason, hint=full_hint(offline_hint))


def fetch_from_wheel(
    package: str,
    version: str,
    member: str,
    dest: Path,
    *,
    expected_sha256: str,
    index_url: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    offline_hint: str | None = None,
) -> Path:
    """Extract ``member`` (a path inside the wheel) of ``package==version``'s wheel to ``dest``.

    The wheel is downloaded next to ``dest`` (resumable, checked against the index's sha256 when
    it gives one) and deleted afterwards. ``dest`` appears only once the member's sha256 equals
    ``expected_sha256``; otherwise ``IntegrityError`` and nothing is left at ``dest``. Network
    failures, a missing version or a missing member raise ``DownloadError``.
    """
    dest = Path(dest)
    link = find_wheel(package, version, index_url, offline_hint=offline_hint)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A fixed hidden name next to dest: an interrupted download resumes from its .part next time.
    wheel_path = dest.with_name(f".{dest.name}.{link.filename}")
    download_file(
        link.url, wheel_path, expected_sha256=link.sha256, progress=progress, offline_hint=offline_hint
    )
    try:
        _extract(wheel_path, link, member, dest, expected_sha256.lower())
    finally:
        wheel_path.unlink(missing_ok=True)
    return dest


def extract_from_wheel_file(wheel_path: Path, member: str, dest: Path, *, expected_sha256: str) -> Path:
    """Extract ``member`` from a wheel already on disk (one a user downloaded elsewhere)."""
    wheel_path = Path(wheel_path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _extract(wheel_path, WheelLink(url=str(wheel_path), filename=wheel_path.name), member, dest, expected_sha256.lower())
    return dest


def _extract(wheel_path: Path, link: WheelLink, member: str, dest: Path, expected_sha256: str) -> None:
    where = f"{link.filename}:{member}"
    try:
        archive = zipfile.ZipFile(wheel_path)
    except (zipfile.BadZipFile, OSError) as error:
        raise DownloadError(link.url, f"the downloaded file is not a readable wheel ({error})") from error
    with archive:
        try:
            info = archive.getinfo(member)
        except KeyError:
            base = member.rsplit("/", 1)[-1]
            similar = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == base]
            reason = f"{link.filename} has no file {member}"
            if similar:
                reason += f" (a file of that name is at {', '.join(similar[:3])})"
            hint = "The package's layout is not what kifaru expects; pass the file locally instead."
            raise DownloadError(link.url, reason, hint=hint) from None
        digest = hashlib.sha256()
        try:
            with atomic_write(dest) as out, archive.open(info) as source:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                actual = digest.hexdigest()
                if actual != expected_sha256:
                    raise IntegrityError(
                        where,
                        expected_sha256,
                        actual,
                        hint=f"Nothing was written to {dest}. The wheel at {link.url} holds a different file "
                        "than expected; check the package version.",
                    )
        except zipfile.BadZipFile as error:  # e.g. a bad CRC-32 inside an unchecked wheel
            raise DownloadError(link.url, f"{where} is damaged in the wheel ({error})") from error
