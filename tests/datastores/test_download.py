"""Downloads continue a partial file when the server supports Range, restart otherwise."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from gridrun.datastores.download import download
from gridrun.datastores.progress import NullProgress

pytestmark = pytest.mark.unit

PAYLOAD = os.urandom(300_000)


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    ranges: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        header = self.headers.get("Range")
        type(self).ranges.append(header or "")
        start = 0
        if header and self.path == "/ranged.tar":
            start = int(header.split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[str]:
    _RangeHandler.ranges = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


class _Count(NullProgress):
    def __init__(self) -> None:
        self.bytes = 0

    def advance(self, nbytes: int = 0, nfiles: int = 0) -> None:
        self.bytes += nbytes


def test_partial_download_is_continued_with_range(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "download"
    (tmp_path / "download.part").write_bytes(PAYLOAD[:100_000])
    progress = _Count()
    download(f"{server}/ranged.tar", dest, progress)
    assert dest.read_bytes() == PAYLOAD
    assert _RangeHandler.ranges == ["bytes=100000-"]
    assert progress.bytes == len(PAYLOAD)
    assert not (tmp_path / "download.part").exists()


def test_partial_download_restarts_when_range_is_ignored(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "download"
    (tmp_path / "download.part").write_bytes(b"garbage that must not survive")
    download(f"{server}/plain.tar", dest, NullProgress())
    assert dest.read_bytes() == PAYLOAD
