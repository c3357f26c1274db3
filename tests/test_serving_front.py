"""sentiment.serving.front: the nginx configuration `serve` writes, checked by nginx itself where it is
installed, and its own error answers in the app's JSON shape."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from sentiment.contract import ServingSettings
from sentiment.serving.front import BODY_TIMEOUT_SECONDS, HEADER_TIMEOUT_SECONDS, find_nginx, nginx_config


def config(tmp_path: Path, **changes: object) -> str:
    settings = replace(ServingSettings.from_environment({}), **changes)  # type: ignore[arg-type]
    return nginx_config(settings, tmp_path, tmp_path / "gunicorn.sock")


def test_the_limits_and_timeouts_are_the_servers(tmp_path: Path) -> None:
    text = config(tmp_path, host="127.0.0.1", port=9001, max_payload_bytes=20 * 2**20, timeout=30)
    assert "listen 127.0.0.1:9001" in text and f"server unix:{tmp_path / 'gunicorn.sock'}" in text
    assert f"client_max_body_size {20 * 2**20};" in text and "proxy_read_timeout 35s;" in text
    assert f"client_header_timeout {HEADER_TIMEOUT_SECONDS}s;" in text
    assert f"client_body_timeout {BODY_TIMEOUT_SECONDS}s;" in text
    assert "proxy_request_buffering on;" in text and "proxy_next_upstream off;" in text
    assert all(str(tmp_path) in line for line in text.splitlines() if "_temp_path" in line)  # nothing outside the run


def test_its_own_errors_are_the_apps_json(tmp_path: Path) -> None:
    bodies = re.findall(r"return (\d+) '(.*)';", config(tmp_path))
    assert {status for status, _ in bodies} == {"400", "408", "413", "431", "503", "504"}
    for _, body in bodies:
        document = json.loads(body.replace("\\'", "'"))
        assert set(document) == {"error", "message"} and document["message"]


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    nginx = find_nginx()
    if nginx is None:
        pytest.skip("nginx is not installed")
    path = tmp_path / "nginx.conf"
    path.write_text(config(tmp_path))
    check = subprocess.run(
        [nginx, "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
