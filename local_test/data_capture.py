"""A local stand-in for SageMaker's Data Capture: a proxy in front of `serve` that answers every request as
`serve` answers it and writes each answered invocation to capture files in SageMaker's format (for `sentiment-drift`).

    local_test/data_capture.py --serve-url http://127.0.0.1:8081 --capture capture/ [--port 8080]

Files go where SageMaker puts them below DestinationS3Uri, `CAPTURE/ENDPOINT/VARIANT/yyyy/mm/dd/hh/`
(`mm-ss-mmm-<uuid>.jsonl`), one JSON object per invocation: captureData.endpointInput/endpointOutput with
observedContentType, mode, data and encoding (JSON or CSV for the content types CaptureContentTypeHeader
lists, BASE64 for any other), eventMetadata (eventId, inferenceTime) and eventVersion "0". Only answered
(200) invocations are written. Records are buffered and written every `--flush-seconds`, each file
whole (a temporary name, then renamed), and once more when the proxy stops (Ctrl+C or SIGTERM).
Standard library only: like SageMaker, it knows the container only over HTTP.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FORWARDED_HEADERS = ("Content-Type", "Accept", "X-Amzn-SageMaker-Custom-Attributes")
JSON_CONTENT_TYPES = ("application/json", "application/jsonlines")  # CaptureContentTypeHeader.JsonContentTypes
CSV_CONTENT_TYPES = ("text/csv",)  # CaptureContentTypeHeader.CsvContentTypes
MAX_BODY_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's payload limit


def step(message: str) -> None:
    sys.stdout.write(f"data-capture: {message}\n")
    sys.stdout.flush()


def fail(message: str) -> int:
    sys.stderr.write(f"data-capture: error: {message}\n")
    return 1


def captured_part(body: bytes, content_type: str, mode: str) -> dict[str, str]:
    """endpointInput or endpointOutput: the body as text for JSON and CSV content types, else base64."""
    media_type = content_type.split(";")[0].strip().lower()
    encoding = "JSON" if media_type in JSON_CONTENT_TYPES else "CSV" if media_type in CSV_CONTENT_TYPES else "BASE64"
    if encoding != "BASE64":
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "BASE64"
    if encoding == "BASE64":
        data = base64.b64encode(body).decode("ascii")
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def capture_record(
    request: bytes, request_type: str, answer: bytes, answer_type: str, when: datetime
) -> dict[str, Any]:
    """One invocation as SageMaker's Data Capture writes it."""
    return {
        "captureData": {
            "endpointInput": captured_part(request, request_type, "INPUT"),
            "endpointOutput": captured_part(answer, answer_type, "OUTPUT"),
        },
        "eventMetadata": {
            "eventId": str(uuid.uuid4()),
            "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        },
        "eventVersion": "0",
    }


class CaptureWriter:
    """Buffers records and writes them, hour by hour, as whole files below `folder/endpoint/variant/`."""

    def __init__(self, folder: Path, endpoint: str, variant: str) -> None:
        self.root = folder / endpoint / variant
        self.pending: list[tuple[datetime, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def add(self, when: datetime, record: dict[str, Any]) -> None:
        with self.lock:
            self.pending.append((when, record))

    def flush(self) -> list[Path]:
        """Write what is buffered, one file per hour it fell in; the files written."""
        with self.lock:
            pending, self.pending = self.pending, []
        by_hour: dict[datetime, list[tuple[datetime, dict[str, Any]]]] = {}
        for when, record in pending:
            by_hour.setdefault(when.replace(minute=0, second=0, microsecond=0), []).append((when, record))
        written = []
        for hour, records in sorted(by_hour.items()):
            first = records[0][0]
            name = f"{first:%M-%S}-{first.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
            path = self.root / f"{hour:%Y/%m/%d/%H}" / name
            write_atomic(path, "".join(json.dumps(record) + "\n" for _, record in records).encode("utf-8"))
            step(f"wrote {path} ({len(records)} records)")
            written.append(path)
        return written


def write_atomic(path: Path, data: bytes) -> None:
    """A reader sees the whole file or none of it: written under a temporary name, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def make_handler(serve_url: str, writer: CaptureWriter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.relay(b"")

        def do_POST(self) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self.answer(
                    400, b'{"error": "bad_request", "message": "Content-Length is not a number"}', "application/json"
                )
                return
            if length > MAX_BODY_BYTES:
                self.answer(413, b'{"error": "payload_too_large", "message": "over 6 MB"}', "application/json")
                return
            self.relay(self.rfile.read(length))

        def relay(self, body: bytes) -> None:
            headers = {name: self.headers[name] for name in FORWARDED_HEADERS if self.headers.get(name)}
            request = urllib.request.Request(
                serve_url + self.path,
                data=body if self.command == "POST" else None,
                headers=headers,
                method=self.command,
            )
            try:
                with urllib.request.urlopen(request, timeout=70) as response:
                    status, answer, answer_type = (
                        response.status,
                        response.read(),
                        response.headers.get("Content-Type", ""),
                    )
            except urllib.error.HTTPError as error:
                status, answer, answer_type = error.code, error.read(), error.headers.get("Content-Type", "")
            except OSError as error:
                message = json.dumps({"error": "bad_gateway", "message": f"serve did not answer: {error}"})
                self.answer(502, message.encode(), "application/json")
                return
            if self.command == "POST" and self.path.split("?")[0].endswith("/invocations") and status == 200:
                when = datetime.now(UTC)
                writer.add(when, capture_record(body, self.headers.get("Content-Type", ""), answer, answer_type, when))
            self.answer(status, answer, answer_type)

        def answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # one line per request is serve's job
            pass

    return Handler


def flush_every(writer: CaptureWriter, seconds: float, stop: threading.Event) -> None:
    while not stop.wait(seconds):
        writer.flush()


def option_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the options, before anything listens or is written; None when nothing is."""
    if not args.serve_url.startswith(("http://", "https://")):
        return f"--serve-url {args.serve_url!r} is not an http:// URL"
    if not 0 <= args.port <= 65535:
        return f"--port {args.port} is not a port number"
    if args.flush_seconds <= 0:
        return f"--flush-seconds {args.flush_seconds} must be above 0"
    for name in (args.endpoint, args.variant):
        if not name or "/" in name or name.startswith("."):
            return f"{name!r} cannot be a folder name for an endpoint or variant"
    if args.capture.exists() and not args.capture.is_dir():
        return f"--capture {args.capture} exists and is not a folder"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve-url", required=True, help="the `serve` to capture, e.g. http://127.0.0.1:8081")
    parser.add_argument("--capture", type=Path, required=True, help="the folder standing for DestinationS3Uri")
    parser.add_argument("--port", type=int, default=8080, help="where to listen on 127.0.0.1 (0: any free port)")
    parser.add_argument("--endpoint", default="local", help="the endpoint's name in the paths (default: local)")
    parser.add_argument("--variant", default="AllTraffic", help="the variant's name in the paths (default: AllTraffic)")
    parser.add_argument("--flush-seconds", type=float, default=5.0, help="how often buffered records are written")
    args = parser.parse_args(argv)
    if problem := option_problem(args):
        return fail(problem)
    writer = CaptureWriter(args.capture, args.endpoint, args.variant)
    try:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.serve_url.rstrip("/"), writer))
    except OSError as error:
        return fail(f"--port {args.port}: {error.strerror}")
    stop = threading.Event()
    threading.Thread(target=flush_every, args=(writer, args.flush_seconds, stop), daemon=True).start()

    def shut_down(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    step(f"http://127.0.0.1:{server.server_address[1]} -> {args.serve_url}, capturing to {writer.root}")
    server.serve_forever()
    stop.set()
    writer.flush()
    server.server_close()
    step("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
