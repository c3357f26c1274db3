"""nginx in front of gunicorn, as SageMaker's bring-your-own-container example runs it.

A gunicorn thread reads a request's headers and body itself, for as long as they take: 16 clients
sending one byte a second hold every thread of two workers, and `/ping` misses SageMaker's 2 s
health check. nginx reads each request whole (a thousand slow clients cost it a few kilobytes each)
with deadlines (`HEADER_TIMEOUT_SECONDS` for the headers, `BODY_TIMEOUT_SECONDS` between two reads
of the body) and only then hands it to gunicorn over a Unix socket, so gunicorn's threads only ever
score complete requests. A body that ends before its Content-Length is dropped unanswered (the
connection closed, as RFC 9112 section 8 asks); gunicorn alone answers it with a 400.

`nginx_config` writes the configuration; `serve` (sentiment.cli.serve) runs and supervises both.
Errors nginx answers itself are JSON `{"error", "message"}` like the app's.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sentiment.contract import ServingSettings

HEADER_TIMEOUT_SECONDS = 10  # the whole request line and headers (SageMaker's clients send them at once)
BODY_TIMEOUT_SECONDS = 10  # between two reads of the body: a body that stops arriving is dropped after this
SEND_TIMEOUT_SECONDS = 30  # between two writes of the answer to a client that stopped reading
KEEPALIVE_SECONDS = 75  # longer than SageMaker's and API Gateway's idle connections
NGINX_PATHS = ("nginx", "/usr/sbin/nginx")  # /usr/sbin is often off a non-root user's PATH


def find_nginx() -> str | None:
    """The nginx program, or None where it is not installed."""
    for candidate in NGINX_PATHS:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def _json_error(status: int, error: str, message: str) -> str:
    """A named location answering `status` with our JSON error body (nginx's own pages are HTML)."""
    body = json.dumps({"error": error, "message": message}).replace("'", "\\'")
    return f"""        location @error_{status} {{
            internal;
            default_type application/json;
            return {status} '{body}';
        }}"""


def nginx_config(settings: ServingSettings, runtime: Path, upstream: Path) -> str:
    """nginx.conf for `settings`' address, proxying to gunicorn's Unix socket `upstream`; state under `runtime`."""
    limit = settings.max_payload_bytes
    errors = "\n".join(
        [
            _json_error(400, "bad_request", "malformed HTTP request"),
            _json_error(
                408, "request_timeout", f"the request did not arrive in time ({HEADER_TIMEOUT_SECONDS} s for headers)"
            ),
            _json_error(413, "payload_too_large", f"the body is over the {limit:,}-byte ({limit // 2**20} MB) limit"),
            _json_error(431, "request_header_too_large", "the request's headers are too large"),
            _json_error(503, "model_not_ready", "the model server is starting or restarting; retry shortly"),
            _json_error(504, "timeout", "the model did not answer in time; retry"),
        ]
    )
    temporary = "\n".join(
        f"    {kind}_temp_path {runtime / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # Run as root (a local run, or SENTIMENT_SERVE_USER=root), nginx would hand requests to workers running as
    # `nobody`, who cannot open the run's private folder; as anyone else there is no choice to make.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return f"""# Written by `serve` (sentiment/serving/front.py) for this run; not read from anywhere else.
{user}daemon off;
master_process on;
worker_processes 1;  # nginx only moves bytes here: one process keeps thousands of connections
worker_rlimit_nofile 8192;
pid {runtime / "nginx.pid"};
error_log stderr warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;  # the app logs one JSON line per request
    server_tokens off;
{temporary}
    client_header_timeout {HEADER_TIMEOUT_SECONDS}s;
    client_body_timeout {BODY_TIMEOUT_SECONDS}s;
    send_timeout {SEND_TIMEOUT_SECONDS}s;
    keepalive_timeout {KEEPALIVE_SECONDS}s;
    client_max_body_size {limit};
    client_body_buffer_size 1m;  # larger bodies wait in a file under the run's folder
    proxy_buffer_size 16k;
    proxy_buffers 64 16k;

    upstream gunicorn {{
        server unix:{upstream} fail_timeout=0;
        keepalive 32;
    }}

    server {{
        listen {settings.host}:{settings.port} backlog=2048;

        error_page 400 @error_400;
        error_page 408 @error_408;
        error_page 413 @error_413;
        error_page 494 =431 @error_431;
        error_page 502 =503 @error_503;
        error_page 504 @error_504;

        location / {{
            proxy_pass http://gunicorn;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_request_buffering on;  # the whole body first: gunicorn never waits on a client
            proxy_connect_timeout 5s;
            proxy_read_timeout {settings.timeout + 5}s;  # gunicorn restarts a worker stuck for `timeout`
            proxy_next_upstream off;  # never send a request twice
        }}

{errors}
    }}
}}
"""
