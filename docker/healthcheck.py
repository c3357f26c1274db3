#!/usr/bin/env python3
# docker/healthcheck.py, the image's HEALTHCHECK (/usr/local/bin/sentiment-healthcheck): a container started as
# `serve` is healthy while GET /ping answers 200 within 2 s; one started as anything else (`train`) has no server.
"""Exit 0 when healthy, 1 when not (docker's HEALTHCHECK contract); standard library only."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

PING_SECONDS = 2.0  # SageMaker's own limit for /ping


def started_as_serve(cmdline: bytes) -> bool:
    """Whether PID 1's command line (tini -g -- /usr/local/bin/sentiment-entrypoint COMMAND ...) runs `serve`."""
    arguments = [part.decode(errors="replace") for part in cmdline.split(b"\0") if part]
    entrypoint = next((n for n, argument in enumerate(arguments) if argument.endswith("sentiment-entrypoint")), None)
    if entrypoint is None:  # started some other way (--entrypoint): nothing of ours to check
        return False
    command = arguments[entrypoint + 1 : entrypoint + 2] or ["serve"]  # no command: the image's CMD, serve
    return command == ["serve"]


def ping_url(environ: os._Environ[str] | dict[str, str]) -> str:
    host = environ.get("SENTIMENT_BIND_HOST", "0.0.0.0")
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{host}:{environ.get('SAGEMAKER_BIND_TO_PORT', '8080')}/ping"


def main() -> int:
    if not started_as_serve(Path("/proc/1/cmdline").read_bytes()):
        return 0
    url = ping_url(os.environ)
    try:
        with urllib.request.urlopen(url, timeout=PING_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError as error:
        print(f"healthcheck: {url}: {error}")
        return 1
    print(f"healthcheck: {url}: {status}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
