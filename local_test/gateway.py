"""A local stand-in for API Gateway and CloudFront: serves web/ at / with the page's security headers and turns
POST /predict into a proxy event (payload 1.0) for the real lambda/handler.py, whose boto3 client is pointed at a
local `serve` speaking SageMaker runtime's API."""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import signal
import sys
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent
WEB_DIR = REPOSITORY / "web"
HANDLER_PATH = REPOSITORY / "lambda" / "handler.py"
ENDPOINT_NAME = "local"  # `serve` answers /endpoints/<any name>/invocations
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's own payload limit
CONTENT_TYPES = {  # the only files served, and only from web/ itself
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".png": "image/png",
}
# What CloudFront's response-headers policy adds to every answer of the page (deploy/template.yaml's
# PageHeadersPolicy, where {api_origin} is ${HttpApi.ApiEndpoint}; tests/test_deploy_template.py checks they agree).
# Browsers ignore Strict-Transport-Security over plain http, so sending it here changes nothing locally.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self' {api_origin}; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Strict-Transport-Security": "max-age=31536000",
    "Referrer-Policy": "no-referrer",
}


def step(message: str) -> None:
    sys.stdout.write(f"gateway: {message}\n")
    sys.stdout.flush()


def load_handler(serve_url: str, origin: str) -> ModuleType:
    """The real lambda/handler.py, configured through its environment the way Lambda would configure it."""
    os.environ.update(
        {
            "ENDPOINT_NAME": ENDPOINT_NAME,
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": serve_url,
            "ALLOWED_ORIGIN": origin,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    # `lambda` is a keyword, so the folder cannot be imported as a package: load the file itself.
    spec = importlib.util.spec_from_file_location("lambda_handler", HANDLER_PATH)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {HANDLER_PATH}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def security_headers(api_origin: str) -> dict[str, str]:
    """The page's security headers when its API is at `api_origin` (scheme, host and port)."""
    return {"Content-Security-Policy": CONTENT_SECURITY_POLICY.format(api_origin=api_origin), **SECURITY_HEADERS}


def static_files(folder: Path) -> dict[str, Path]:
    """URL path -> file for each servable file directly in `folder`; `/` is index.html."""
    files = {f"/{path.name}": path for path in folder.iterdir() if path.is_file() and path.suffix in CONTENT_TYPES}
    if "/index.html" in files:
        files["/"] = files["/index.html"]
    return files


def proxy_event(method: str, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The REST API (payload 1.0) proxy event API Gateway would hand Lambda for this request."""
    try:
        text, encoded = (body.decode("utf-8") if body else None), False
    except UnicodeDecodeError:
        # API Gateway hands bodies that are not UTF-8 text to Lambda base64-encoded.
        text, encoded = base64.b64encode(body).decode("ascii"), True
    return {
        "resource": "/predict",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "queryStringParameters": None,
        "body": text,
        "isBase64Encoded": encoded,
        "requestContext": {"requestId": str(uuid.uuid4()), "stage": "local", "httpMethod": method},
    }


class Gateway(BaseHTTPRequestHandler):
    """One request: a static file, a proxy event for the relay, or a JSON 404/413."""

    relay: ModuleType
    files: dict[str, Path]
    page_headers: dict[str, str]  # on the page's answers (CloudFront's), not on the API's
    max_body_bytes: int
    server_version = "local-api-gateway"
    timeout = 60  # seconds a connection may sit idle or half-sent before its thread gives up

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/predict":
            self._proxy()
            return
        file = self.files.get(path)
        if file is None:
            document = {"error": "not_found", "message": f"no resource at {path}: the API is POST /predict"}
            self._send(404, {"Content-Type": "application/json", **self.page_headers}, json.dumps(document).encode())
            return
        body = file.read_bytes()
        headers = {"Content-Type": CONTENT_TYPES[file.suffix], "Cache-Control": "no-cache", **self.page_headers}
        self._send(200, headers, body)

    def do_POST(self) -> None:
        self._proxy()

    def do_OPTIONS(self) -> None:
        self._proxy()

    def do_PUT(self) -> None:
        self._proxy()

    def do_DELETE(self) -> None:
        self._proxy()

    def _proxy(self) -> None:
        path = self.path.split("?", 1)[0]
        if path != "/predict":
            self._json(404, {"error": "not_found", "message": f"no resource at {path}: the API is POST /predict"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            # A negative length would make rfile.read() wait for the client to close the connection.
            self._json(400, {"error": "bad_request", "message": "Content-Length is not a number of bytes"})
            return
        if length > self.max_body_bytes:
            self.close_connection = True
            message = f"the body is over {self.max_body_bytes:,} bytes"
            self._json(413, {"error": "payload_too_large", "message": message})
            return
        body = self.rfile.read(length) if length else b""
        try:
            response = self.relay.handler(proxy_event(self.command, path, dict(self.headers.items()), body), None)
        except Exception as error:
            # What API Gateway answers when the function itself fails; the traceback goes to the log, like CloudWatch.
            step(f"the relay raised {type(error).__name__}: {error}")
            traceback.print_exc()
            self._json(502, {"message": "Internal server error"})
            return
        raw = response.get("body") or ""
        self._send(int(response["statusCode"]), dict(response.get("headers") or {}), raw.encode("utf-8"))

    def _json(self, status: int, document: dict[str, Any]) -> None:
        self._send(status, {"Content-Type": "application/json"}, json.dumps(document).encode("utf-8"))

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        step(f"{self.command} {self.path.split('?', 1)[0]} -> {args[1] if len(args) > 1 else ''}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")), help="default: 8080")
    parser.add_argument("--serve-url", required=True, help="the local `serve`, e.g. http://127.0.0.1:8081")
    parser.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES, help="default: 10 MiB")
    args = parser.parse_args(argv)

    origin = f"http://127.0.0.1:{args.port}"
    Gateway.relay = load_handler(args.serve_url.rstrip("/"), origin)
    Gateway.files = static_files(WEB_DIR)
    Gateway.page_headers = security_headers(origin)  # the page's API is this gateway's own POST /predict
    Gateway.max_body_bytes = args.max_body_bytes
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Gateway)
    server.daemon_threads = True
    # Browsers open spare connections they may never use; closing must not wait for them.
    server.block_on_close = False
    stop_on_signals()
    step(f"relaying POST /predict to lambda/handler.py -> {args.serve_url} (endpoint {ENDPOINT_NAME!r})")
    step(f"serving {len(Gateway.files)} files from web/ on {origin}/")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        step("stopped")
    finally:
        server.server_close()
    return 0


def stop_on_signals() -> None:
    """Ctrl+C and SIGTERM stop the gateway, even when a shell started it as a background job (which
    ignores SIGINT); so does SIGHUP, unless it was ignored on purpose (`nohup make run` outlives the terminal)."""

    def interrupt(number: int, frame: object) -> None:
        raise KeyboardInterrupt

    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if number != signal.SIGHUP or signal.getsignal(number) != signal.SIG_IGN:
            signal.signal(number, interrupt)


if __name__ == "__main__":
    sys.exit(main())
