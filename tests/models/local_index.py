"""A package index on the local HTTP test server (tests/http_server.py): wheel-shaped zips
listed on a PEP 503 page at ``<server>/simple/<project>/``, as pip and kifaru read them."""

from __future__ import annotations

import hashlib
import io
import zipfile


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def publish_wheel(server, package: str, version: str, members: dict[str, bytes]) -> str:
    """Serve ``package-version-py3-none-any.whl`` holding ``members``; return the index URL
    (what PIP_INDEX_URL would be set to)."""
    filename = f"{package}-{version}-py3-none-any.whl"
    wheel = make_wheel({**members, f"{package}-{version}.dist-info/METADATA": f"Name: {package}\n".encode()})
    server.add(f"packages/{filename}", wheel)
    anchor = f'<a href="../../packages/{filename}#sha256={sha256(wheel)}">{filename}</a>'
    body = f"<!DOCTYPE html><html><body><h1>Links for {package}</h1>\n{anchor}<br/>\n</body></html>"
    server.pages[f"/simple/{package}/"] = ("text/html; charset=utf-8", body.encode())
    return f"{server.url}/simple"


def wheel_requests(server) -> list[str]:
    """The paths of the wheels the server was asked for."""
    return [r["path"] for r in server.requests if r["path"].endswith(".whl")]
