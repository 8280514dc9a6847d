from __future__ import annotations

import json
import socket

import pytest

from kifaru.exceptions import DownloadError, IntegrityError
from kifaru.models.wheel import (
    DEFAULT_INDEX_URL,
    JSON_TYPE,
    WheelLink,
    fetch_from_wheel,
    find_wheel,
    index_url_from_environment,
    normalize_name,
)
from tests.models.local_index import make_wheel
from tests.models.local_index import sha256 as sha

MEMBER = "zamba/object_detection/yolox/assets/yolox_tiny_640_20220528.pth"
WEIGHTS = b"not really a checkpoint, but bytes all the same" * 20
WEIGHTS_SHA = sha(WEIGHTS)
WHEEL = "zamba-2.7.2-py3-none-any.whl"


@pytest.fixture
def index(http_server):
    """A simple index at ``<server>/simple`` listing zamba's files; ``publish(fmt)`` serves its page."""
    wheel = make_wheel(
        {"zamba/__init__.py": b"", MEMBER: WEIGHTS, "zamba-2.7.2.dist-info/METADATA": b"Name: zamba\n"}
    )
    old = make_wheel({"zamba/__init__.py": b"# old"})
    files = {
        WHEEL: wheel,
        "zamba-2.7.1-py3-none-any.whl": old,
        "zamba-2.7.2.tar.gz": b"sdist",
        "zamba-2.7.2-cp311-cp311-manylinux_2_17_x86_64.whl": b"binary",  # never the pure pick
        "zamba-2.8.0-cp311-cp311-manylinux_2_17_x86_64.whl": b"binary",
    }
    for name, data in files.items():
        http_server.add(f"packages/ab/cd/{name}", data)

    def publish(fmt: str = "html", hashes: dict[str, str] | None = None) -> None:
        digests = {name: sha(data) for name, data in files.items()} | (hashes or {})
        if fmt == "html":
            anchors = "\n".join(
                f'<a href="../../packages/ab/cd/{name}#sha256={digests[name]}" '
                f'data-requires-python="&gt;=3.8">{name}</a><br/>'
                for name in files
            )
            body = f"<!DOCTYPE html><html><body><h1>Links for zamba</h1>\n{anchors}\n</body></html>"
            http_server.pages["/simple/zamba/"] = ("text/html; charset=utf-8", body.encode())
        else:
            # The wanted wheel's URL is relative, the others absolute: PEP 691 allows both.
            urls = {name: f"{http_server.url}/packages/ab/cd/{name}" for name in files}
            urls[WHEEL] = f"../../packages/ab/cd/{WHEEL}"
            entries = [{"filename": n, "url": urls[n], "hashes": {"sha256": digests[n]}} for n in files]
            payload = {"meta": {"api-version": "1.1"}, "name": "zamba", "files": entries}
            http_server.pages["/simple/zamba/"] = (JSON_TYPE, json.dumps(payload).encode())

    http_server.publish = publish
    http_server.index_url = f"{http_server.url}/simple"
    http_server.wheel_url = f"{http_server.url}/packages/ab/cd/{WHEEL}"
    http_server.wheel_sha = sha(wheel)
    return http_server


def test_normalize_name():
    assert normalize_name("Zamba_Foo.bar--baz") == "zamba-foo-bar-baz"


@pytest.mark.parametrize("fmt", ["html", "json"])
def test_find_wheel(index, fmt):
    index.publish(fmt)
    link = find_wheel("Zamba", "2.7.2", index.index_url + "/")
    assert link == WheelLink(url=index.wheel_url, filename=WHEEL, sha256=index.wheel_sha)
    assert index.requests[0]["path"] == "/simple/zamba/"
    assert index.requests[0]["accept"] == "application/vnd.pypi.simple.v1+json, text/html;q=0.1"


@pytest.mark.parametrize("fmt", ["html", "json"])
def test_fetch_from_wheel(index, tmp_path, fmt):
    index.publish(fmt)
    dest = tmp_path / "weights" / "yolox_tiny.pth"
    calls = []
    out = fetch_from_wheel(
        "zamba",
        "2.7.2",
        MEMBER,
        dest,
        expected_sha256=WEIGHTS_SHA,
        index_url=index.index_url,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert out == dest and dest.read_bytes() == WEIGHTS
    assert sorted(p.name for p in dest.parent.iterdir()) == ["yolox_tiny.pth"]  # wheel and temporaries gone
    assert calls[-1][0] == calls[-1][1] > 0


def test_wrong_member_sha(index, tmp_path):
    index.publish()
    dest = tmp_path / "w.pth"
    with pytest.raises(IntegrityError) as info:
        fetch_from_wheel("zamba", "2.7.2", MEMBER, dest, expected_sha256="ab" * 32, index_url=index.index_url)
    message = str(info.value)
    assert MEMBER in message and WEIGHTS_SHA in message and "ab" * 32 in message
    assert list(tmp_path.iterdir()) == [tmp_path / "www"]  # nothing at dest, no wheel, no temp file


def test_wheel_sha_from_index_is_checked(index, tmp_path):
    index.publish(hashes={WHEEL: "cd" * 32})
    dest = tmp_path / "w.pth"
    with pytest.raises(IntegrityError, match=WHEEL):
        fetch_from_wheel(
            "zamba", "2.7.2", MEMBER, dest, expected_sha256=WEIGHTS_SHA, index_url=index.index_url
        )
    assert list(tmp_path.iterdir()) == [tmp_path / "www"]


def test_missing_member(index, tmp_path):
    index.publish()
    dest = tmp_path / "w.pth"
    member = "zamba/yolox_tiny_640_20220528.pth"
    with pytest.raises(DownloadError, match="has no file zamba/yolox_tiny_640") as info:
        fetch_from_wheel(
            "zamba", "2.7.2", member, dest, expected_sha256=WEIGHTS_SHA, index_url=index.index_url
        )
    assert MEMBER in str(info.value)  # points at the file of that name it does have
    assert list(tmp_path.iterdir()) == [tmp_path / "www"]


def test_missing_version_lists_available(index):
    index.publish("json")
    with pytest.raises(DownloadError) as info:
        find_wheel("zamba", "9.9.9", index.index_url)
    message = str(info.value)
    assert "no zamba 9.9.9" in message and "2.7.1, 2.7.2, 2.8.0" in message
    assert f"{index.index_url}/zamba/" in message


def test_version_without_pure_wheel(index):
    index.publish()
    with pytest.raises(DownloadError, match="no pure-Python") as info:
        find_wheel("zamba", "2.8.0", index.index_url)
    assert "zamba-2.8.0-cp311-cp311-manylinux_2_17_x86_64.whl" in str(info.value)


def test_unknown_project(index):
    with pytest.raises(DownloadError, match="HTTP 404.*no project named 'nosuch'"):
        find_wheel("nosuch", "1.0", index.index_url)


def test_unreachable_index():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/simple"
    with pytest.raises(DownloadError) as info:
        find_wheel("zamba", "2.7.2", url, offline_hint="Run `pip download zamba==2.7.2 --no-deps` elsewhere.")
    message = str(info.value)
    assert f"{url}/zamba/" in message and message.endswith("elsewhere.")


def test_pip_index_url_is_honoured(index, monkeypatch):
    index.publish()
    monkeypatch.setenv("PIP_INDEX_URL", index.index_url)
    assert find_wheel("zamba", "2.7.2").url == index.wheel_url
    assert index.requests[0]["path"] == "/simple/zamba/"


def test_default_index(monkeypatch):
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    assert index_url_from_environment() == DEFAULT_INDEX_URL == "https://pypi.org/simple"
    assert index_url_from_environment("http://mirror/simple/") == "http://mirror/simple"
