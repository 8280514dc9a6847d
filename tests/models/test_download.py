from __future__ import annotations

import hashlib
import os
import socket

import pytest

from kifaru.exceptions import DownloadError, IntegrityError, KifaruError
from kifaru.models.download import download_file, sha256_of

DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sha256_of(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(DATA)
    assert sha256_of(path) == SHA


def test_fresh_download_with_progress(http_server, tmp_path):
    url = http_server.add("w.bin", DATA)
    calls = []
    dest = tmp_path / "deep" / "dir" / "w.bin"
    assert download_file(url, dest, expected_sha256=SHA, progress=lambda d, t: calls.append((d, t))) == dest
    assert dest.read_bytes() == DATA
    assert not dest.with_name("w.bin.part").exists()
    assert http_server.ranges() == [None]
    assert calls[0] == (0, len(DATA)) and calls[-1] == (len(DATA), len(DATA))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_resume_from_partial_file(http_server, tmp_path):
    url = http_server.add("w.bin", DATA)
    dest = tmp_path / "w.bin"
    dest.with_name("w.bin.part").write_bytes(DATA[:1000])
    calls = []
    download_file(url, dest, expected_sha256=SHA, progress=lambda d, t: calls.append((d, t)))
    assert dest.read_bytes() == DATA
    assert http_server.ranges() == ["bytes=1000-"]
    assert calls[0] == (1000, len(DATA))


def test_interrupted_download_keeps_part_and_resumes(http_server, tmp_path):
    url = http_server.add("w.bin", DATA)
    http_server.cut_after, http_server.cut_times = 5000, 1
    dest = tmp_path / "w.bin"
    with pytest.raises(DownloadError, match="after 5000 of 300000 bytes") as info:
        download_file(url, dest, expected_sha256=SHA)
    assert url in str(info.value)
    assert not dest.exists()
    assert dest.with_name("w.bin.part").stat().st_size == 5000
    download_file(url, dest, expected_sha256=SHA)
    assert dest.read_bytes() == DATA
    assert http_server.ranges() == [None, "bytes=5000-"]


def test_server_ignoring_range_restarts_from_zero(http_server, tmp_path):
    url = http_server.add("w.bin", DATA)
    http_server.ignore_range = True
    dest = tmp_path / "w.bin"
    dest.with_name("w.bin.part").write_bytes(b"x" * 1000)  # garbage that must not survive
    download_file(url, dest, expected_sha256=SHA)
    assert dest.read_bytes() == DATA
    assert http_server.ranges() == ["bytes=1000-"]


def test_complete_part_file_gets_416_and_is_used(http_server, tmp_path):
    url = http_server.add("w.bin", DATA)
    dest = tmp_path / "w.bin"
    dest.with_name("w.bin.part").write_bytes(DATA)
    download_file(url, dest, expected_sha256=SHA)
    assert dest.read_bytes() == DATA
    assert http_server.ranges() == [f"bytes={len(DATA)}-"]


def test_part_file_longer_than_remote_restarts(http_server, tmp_path):
    url = http_server.add("w.bin", DATA)
    dest = tmp_path / "w.bin"
    dest.with_name("w.bin.part").write_bytes(DATA + b"extra")
    download_file(url, dest, expected_sha256=SHA)
    assert dest.read_bytes() == DATA
    assert http_server.ranges() == [f"bytes={len(DATA) + 5}-", None]


def test_checksum_mismatch(http_server, tmp_path):
    url = http_server.add("w.bin", DATA)
    dest = tmp_path / "w.bin"
    with pytest.raises(IntegrityError) as info:
        download_file(url, dest, expected_sha256="0" * 64)
    message = str(info.value)
    assert str(dest) in message and "0" * 64 in message and SHA in message and url in message
    assert isinstance(info.value, KifaruError)
    assert not dest.exists() and not dest.with_name("w.bin.part").exists()


def test_unreachable_url(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/weights/w.bin"
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path / "w.bin", timeout=5, offline_hint="Or pass --weights PATH.")
    message = str(info.value)
    assert url in message
    assert "refused" in message.lower()
    assert "download the file on a machine that can" in message
    assert message.endswith("Or pass --weights PATH.")
    assert info.value.url == url
    assert not (tmp_path / "w.bin").exists()


def test_http_404(http_server, tmp_path):
    url = f"{http_server.url}/missing.bin"
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_file(url, tmp_path / "w.bin")
    assert url in str(info.value)


def test_timeout(http_server, tmp_path):
    url = http_server.add("w.bin", DATA)
    http_server.delay = 0.5
    with pytest.raises(DownloadError, match="timed out"):
        download_file(url, tmp_path / "w.bin", timeout=0.1)


def test_not_a_url(tmp_path):
    with pytest.raises(DownloadError, match="not-a-url"):
        download_file("not-a-url", tmp_path / "w.bin")


def test_resume_sends_if_range_and_shows_each_answer(http_server, tmp_path):
    url = http_server.add("w.bin", DATA)
    http_server.etags["/w.bin"] = '"v1"'
    dest = tmp_path / "w.bin"
    dest.with_name("w.bin.part").write_bytes(DATA[:1000])
    answers = []
    download_file(url, dest, expected_sha256=SHA, if_range='"v1"', on_response=lambda status, headers: answers.append((status, headers["ETag"])))
    assert dest.read_bytes() == DATA
    assert http_server.ranges() == ["bytes=1000-"] and http_server.if_ranges() == ['"v1"']
    assert answers == [(206, '"v1"')]


def test_if_range_of_a_changed_file_restarts_from_zero(http_server, tmp_path):
    url = http_server.add("w.bin", DATA)
    http_server.etags["/w.bin"] = '"v2"'
    dest = tmp_path / "w.bin"
    dest.with_name("w.bin.part").write_bytes(b"x" * 1000)  # bytes of the old version
    answers = []
    download_file(url, dest, expected_sha256=SHA, if_range='"v1"', on_response=lambda status, headers: answers.append(status))
    assert dest.read_bytes() == DATA
    assert http_server.ranges() == ["bytes=1000-"] and answers == [200]


def test_a_range_of_another_etag_is_not_appended(http_server, tmp_path):
    url = http_server.add("w.bin", DATA)
    http_server.etags["/w.bin"] = '"v2"'
    http_server.honour_if_range = False  # answers the range whatever If-Range says
    dest = tmp_path / "w.bin"
    dest.with_name("w.bin.part").write_bytes(b"x" * 1000)
    download_file(url, dest, expected_sha256=SHA, if_range='"v1"')
    assert dest.read_bytes() == DATA
    assert http_server.ranges() == ["bytes=1000-", None]
