"""A local HTTP file server on 127.0.0.1 for download tests (no test may reach the network), and
a stand-in for Lightning's AttributeDict. Both fixtures are registered in tests/conftest.py."""

from __future__ import annotations

import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


@dataclass
class ServerState:
    """What the server does (set by a test) and what it saw (read by the test)."""

    root: Path
    url: str = ""
    ignore_range: bool = False  # answer every request with 200 and the whole file
    cut_after: int | None = None  # send only this many body bytes, then hang up ...
    cut_times: int = 0  # ... for this many requests
    delay: float = 0.0  # seconds to wait before answering
    etags: dict[str, str] = field(default_factory=dict)  # path -> ETag header sent with the file
    honour_if_range: bool = True  # False: a resume gets the range asked for whatever If-Range says
    pages: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # path -> (type, body)
    requests: list[dict[str, str | None]] = field(default_factory=list)

    def add(self, relative: str, data: bytes) -> str:
        """Serve ``data`` at ``/relative``; return its URL."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"{self.url}/{relative}"

    def ranges(self) -> list[str | None]:
        return [r["range"] for r in self.requests]

    def if_ranges(self) -> list[str | None]:
        return [r["if_range"] for r in self.requests]


def _handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # keep pytest output quiet
            pass

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            state.requests.append(
                {
                    "path": path,
                    "range": self.headers.get("Range"),
                    "if_range": self.headers.get("If-Range"),
                    "accept": self.headers.get("Accept"),
                }
            )
            if state.delay:
                time.sleep(state.delay)
            if path in state.pages:
                content_type, body = state.pages[path]
                return self._send(200, body, {"Content-Type": content_type})
            file = state.root / path.lstrip("/")
            if not file.is_file():
                return self._send(404, b"not found", {"Content-Type": "text/plain"})
            data = file.read_bytes()
            etag = {"ETag": state.etags[path]} if path in state.etags else {}
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if_range = self.headers.get("If-Range")
            # RFC 9110: a Range under an If-Range that is not the current ETag gets the whole file.
            stale = if_range is not None and state.honour_if_range and if_range != etag.get("ETag")
            if match and not state.ignore_range and not stale:
                start = int(match.group(1))
                if start >= len(data):
                    return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}", **etag}
                return self._send(206, data[start:], headers)
            return self._send(200, data, {"Accept-Ranges": "none" if state.ignore_range else "bytes", **etag})

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.cut_times and state.cut_after is not None:
                state.cut_times -= 1
                body = body[: state.cut_after]  # Content-Length promised more: a dropped connection
                self.close_connection = True
            self.wfile.write(body)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that gave up (timeout tests) breaks the pipe: expected, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture
def http_server(tmp_path):
    """A threaded HTTP server on 127.0.0.1 serving files from ``tmp_path/www``, with Range support."""
    state = ServerState(root=tmp_path / "www")
    state.root.mkdir()
    server = _QuietServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def lightning_attribute_dict(monkeypatch):
    """A stand-in for Lightning's AttributeDict (zamba pickles hyper-parameters as one), importable
    while checkpoints are saved. Call ``.uninstall()`` to read them back as kifaru's venv would,
    without Lightning."""
    import sys
    import types

    fake = types.ModuleType("lightning_fabric.utilities.data")

    class AttributeDict(dict):
        @staticmethod
        def uninstall() -> None:
            monkeypatch.delitem(sys.modules, fake.__name__)

    AttributeDict.__module__, AttributeDict.__qualname__ = fake.__name__, "AttributeDict"
    fake.AttributeDict = AttributeDict
    for name in ("lightning_fabric", "lightning_fabric.utilities", fake.__name__):
        monkeypatch.setitem(sys.modules, name, fake if name == fake.__name__ else types.ModuleType(name))
    return AttributeDict
