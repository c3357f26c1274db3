"""sentiment.data.download against a real local HTTP server: resume, retries, checksums."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sentiment.data.download import download
from sentiment.errors import ChecksumError, DownloadError

PAYLOAD = os.urandom(300_000)
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


@dataclass
class FileServer:
    """Serves PAYLOAD at /file with HTTP Range support, misbehaving on request as tests ask."""

    payload: bytes = PAYLOAD
    honour_range: bool = True
    drops: list[int] = field(default_factory=list)  # per request: close after this many body bytes
    statuses: list[int] = field(default_factory=list)  # per request: answer this error status instead
    ranges: list[str | None] = field(default_factory=list)  # the Range header of each request
    url: str = ""


@pytest.fixture
def server() -> Iterator[FileServer]:
    state = FileServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.ranges.append(self.headers.get("Range"))
            if state.statuses:
                self.send_error(state.statuses.pop(0))
                return
            start, status = 0, 200
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if match and state.honour_range:
                start, status = int(match[1]), 206
                if start >= len(state.payload):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(state.payload)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            body = state.payload[start:]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(state.payload) - 1}/{len(state.payload)}")
            self.end_headers()
            if state.drops:
                self.wfile.write(body[: state.drops.pop(0)])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/file"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def fetch(server: FileServer, destination: Path, md5: str | None = PAYLOAD_MD5, attempts: int = 3) -> Path:
    return download(server.url, destination, md5, attempts=attempts, timeout=5, retry_delay=0.01, progress=False)


def test_a_complete_download_is_verified_and_renamed(server: FileServer, tmp_path: Path) -> None:
    path = fetch(server, tmp_path / "a.tar.gz")
    assert path.read_bytes() == PAYLOAD
    assert os.listdir(tmp_path) == ["a.tar.gz"]
    assert server.ranges == [None]


def test_a_dropped_connection_resumes_from_the_last_byte(server: FileServer, tmp_path: Path) -> None:
    server.drops = [100_000, 50_000]
    path = fetch(server, tmp_path / "a.tar.gz")
    assert path.read_bytes() == PAYLOAD
    assert server.ranges == [None, "bytes=100000-", "bytes=150000-"]


def test_an_interrupted_run_leaves_a_partial_file_that_the_next_run_resumes(server: FileServer, tmp_path: Path) -> None:
    server.drops = [120_000, 0, 0]
    with pytest.raises(DownloadError, match=r"after 3 attempts.*120,000 bytes are kept in .*a.tar.gz.partial"):
        fetch(server, tmp_path / "a.tar.gz")
    assert (tmp_path / "a.tar.gz.partial").stat().st_size == 120_000
    assert not (tmp_path / "a.tar.gz").exists()

    path = fetch(server, tmp_path / "a.tar.gz")
    assert path.read_bytes() == PAYLOAD
    assert server.ranges[-1] == "bytes=120000-"
    assert os.listdir(tmp_path) == ["a.tar.gz"]


def test_a_bad_checksum_is_refused_and_the_bytes_discarded(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(ChecksumError, match=f"md5 {PAYLOAD_MD5}, expected 0123"):
        fetch(server, tmp_path / "a.tar.gz", md5="0123" + "0" * 28)
    assert os.listdir(tmp_path) == []


def test_a_server_that_ignores_ranges_is_read_from_the_start(server: FileServer, tmp_path: Path) -> None:
    server.honour_range = False
    server.drops = [100_000]
    assert fetch(server, tmp_path / "a.tar.gz").read_bytes() == PAYLOAD
    assert server.ranges == [None, "bytes=100000-"]


def test_a_partial_file_already_complete_is_finished_without_a_body(server: FileServer, tmp_path: Path) -> None:
    (tmp_path / "a.tar.gz.partial").write_bytes(PAYLOAD)
    assert fetch(server, tmp_path / "a.tar.gz").read_bytes() == PAYLOAD
    assert server.ranges == [f"bytes={len(PAYLOAD)}-"]


def test_a_partial_file_longer_than_the_resource_starts_again(server: FileServer, tmp_path: Path) -> None:
    (tmp_path / "a.tar.gz.partial").write_bytes(PAYLOAD + b"extra")
    assert fetch(server, tmp_path / "a.tar.gz").read_bytes() == PAYLOAD


def test_server_errors_are_retried_and_client_errors_are_not(server: FileServer, tmp_path: Path) -> None:
    server.statuses = [503]
    assert fetch(server, tmp_path / "a.tar.gz").read_bytes() == PAYLOAD
    server.statuses = [404]
    server.ranges.clear()
    with pytest.raises(DownloadError, match="answered 404"):
        fetch(server, tmp_path / "b.tar.gz")
    assert len(server.ranges) == 1


def test_an_existing_download_is_checked_not_fetched_again(server: FileServer, tmp_path: Path) -> None:
    (tmp_path / "a.tar.gz").write_bytes(PAYLOAD)
    fetch(server, tmp_path / "a.tar.gz")
    assert server.ranges == []
    (tmp_path / "a.tar.gz").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="delete it"):
        fetch(server, tmp_path / "a.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == b"tampered"


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="could not download http://127.0.0.1:9/x after 2 attempts"):
        download("http://127.0.0.1:9/x", tmp_path / "x", None, attempts=2, timeout=2, retry_delay=0.01, progress=False)
