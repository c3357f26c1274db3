"""local_test/run_stack.sh for real: serve (bundled model) behind gateway.py and the real lambda/handler.py."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stack import (
    NEGATIVE,
    POSITIVE,
    RUN_STACK,
    Stack,
    alive,
    descendants,
    interrupt,
    port_is_free,
    start_stack,
    stop,
    wait_until,
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("stack"))
    yield stack
    stop(stack)


def request(
    stack: Stack, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request with the path sent exactly as given (urllib would normalise traversal attempts away)."""
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=15)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()
    finally:
        connection.close()


def post_json(stack: Stack, document: Any) -> tuple[int, dict[str, str], dict[str, Any]]:
    status, headers, body = request(
        stack, "POST", "/predict", json.dumps(document).encode(), {"Content-Type": "application/json"}
    )
    return status, headers, json.loads(body)


@pytest.mark.parametrize(
    ("path", "content_type", "marker"),
    [
        ("/", "text/html", b'<textarea id="review"'),
        ("/index.html", "text/html", b'<textarea id="review"'),
        ("/app.js", "text/javascript", b"function validVerdict"),
        ("/style.css", "text/css", b".verdict"),
    ],
)
def test_serves_the_page(stack: Stack, path: str, content_type: str, marker: bytes) -> None:
    status, headers, body = request(stack, "GET", path)
    assert status == 200
    assert headers["content-type"].startswith(content_type)
    assert marker in body


@pytest.mark.parametrize(
    "path",
    [
        "/../README.md",
        "/%2e%2e/README.md",
        "/..%2fREADME.md",
        "/gateway.py",
        "/local_test/gateway.py",
        "/web/app.js",
        "/README.md",  # web/README.md sits in web/ but is documentation, not part of the page
        "//etc/passwd",
    ],
)
def test_nothing_outside_the_page_is_served(stack: Stack, path: str) -> None:
    status, _, body = request(stack, "GET", path)
    assert status == 404
    assert json.loads(body)["error"] == "not_found"


def test_a_json_review_gets_a_verdict_with_its_words(stack: Stack) -> None:
    status, headers, verdict = post_json(stack, {"review": POSITIVE})
    assert status == 200, verdict
    assert headers["content-type"] == "application/json"
    assert headers["access-control-allow-origin"] == stack.url
    assert verdict["label"] == "positive"
    assert 0.5 < verdict["probability"] <= 1.0
    words = verdict["top_words"]
    assert 1 <= len(words) <= 8
    assert all(set(item) == {"word", "contribution"} for item in words)
    assert {"superb", "loved", "wonderful"} & {item["word"] for item in words}


def test_a_plain_text_review_gets_a_verdict(stack: Stack) -> None:
    status, _, body = request(stack, "POST", "/predict", NEGATIVE.encode(), {"Content-Type": "text/plain"})
    verdict = json.loads(body)
    assert status == 200, verdict
    assert verdict["label"] == "negative"
    assert verdict["probability"] < 0.5
    assert min(item["contribution"] for item in verdict["top_words"]) < 0


def test_cors_preflight_names_the_pages_origin(stack: Stack) -> None:
    headers = {
        "Origin": stack.url,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    status, answer, body = request(stack, "OPTIONS", "/predict", headers=headers)
    assert status == 204
    assert body == b""
    assert answer["access-control-allow-origin"] == stack.url
    assert "POST" in answer["access-control-allow-methods"]
    assert answer["access-control-allow-headers"].lower() == "content-type"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        (json.dumps({"review": ""}).encode(), "application/json", 400, "bad_request"),
        (b"   \n ", "text/plain", 400, "bad_request"),
        (json.dumps({"review": "é" * 10_001}).encode(), "application/json", 413, "payload_too_large"),
        (b"\xff\xfe not UTF-8", "text/plain", 400, "bad_request"),
        (b"{not json", "application/json", 400, "bad_request"),
        (b"<review/>", "application/xml", 415, "unsupported_media_type"),
    ],
    ids=["empty", "whitespace", "over-long-multibyte", "not-utf8", "bad-json", "xml"],
)
def test_bad_requests_get_json_errors(stack: Stack, body: bytes, content_type: str, status: int, error: str) -> None:
    answer_status, headers, answer = request(stack, "POST", "/predict", body, {"Content-Type": content_type})
    document = json.loads(answer)
    assert answer_status == status, document
    assert document["error"] == error
    assert document["message"]
    assert "label" not in document
    # Errors carry CORS headers too, or the page could not read why it failed.
    assert headers["access-control-allow-origin"] == stack.url


def test_non_utf8_body_error_says_so(stack: Stack) -> None:
    _, _, body = request(stack, "POST", "/predict", b"caf\xe9", {"Content-Type": "text/plain"})
    assert "UTF-8" in json.loads(body)["message"]


def test_get_predict_is_405_from_the_handler(stack: Stack) -> None:
    status, headers, body = request(stack, "GET", "/predict")
    assert status == 405
    assert headers["allow"] == "POST, OPTIONS"
    assert json.loads(body)["error"] == "method_not_allowed"


def test_a_negative_content_length_is_refused_not_waited_on(stack: Stack) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=5)
    try:
        connection.putrequest("POST", "/predict")
        connection.putheader("Content-Type", "text/plain")
        connection.putheader("Content-Length", "-5")
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 400
    finally:
        connection.close()


def stack_processes(stack: Stack) -> set[int]:
    """serve's gunicorn master and worker and the gateway: everything run_stack.sh started."""
    processes = descendants(stack.process.pid)
    assert stack.gunicorn_master() in processes
    assert len(processes) >= 3, stack.output()  # gunicorn master, its worker, the gateway
    return processes


@pytest.mark.parametrize(
    ("how", "status"),
    [("ctrl-c", 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    ids=["ctrl-c", "sigterm", "sighup-closed-terminal"],
)
def test_a_signal_stops_everything(tmp_path: Path, how: str | signal.Signals, status: int) -> None:
    stack = start_stack(tmp_path)
    processes, ports = stack_processes(stack), (stack.port, stack.serve_port())
    try:
        if how == "ctrl-c":
            interrupt(stack)  # the whole foreground group, as a terminal does
        else:
            stack.process.send_signal(how)  # the script alone: its children are in their own groups
        assert stack.process.wait(timeout=20) == status
    finally:
        stop(stack)
    wait_until(lambda: not any(alive(pid) for pid in processes), 10, "every process of the stack exiting")
    assert all(port_is_free(port) for port in ports)
    assert "run_stack: stopping" in stack.output()


def test_serve_dying_stops_the_stack(tmp_path: Path) -> None:
    stack = start_stack(tmp_path)
    processes = stack_processes(stack)
    try:
        os.kill(stack.gunicorn_master(), signal.SIGKILL)
        status = stack.process.wait(timeout=20)
    finally:
        stop(stack)
    assert status == 1
    assert "a process of the stack exited (status 137)" in stack.output()
    # The gateway and the orphaned gunicorn worker go too: nothing half-alive answers on the page's port.
    wait_until(lambda: not any(alive(pid) for pid in processes), 10, "the rest of the stack exiting")
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", stack.port), timeout=2):
        pass


def run_script(script: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(script), *arguments], capture_output=True, text=True, timeout=20, check=False)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--port"], "--port needs a number"),
        (["--port", "http"], "--port must be a number from 1 to 65535, not 'http'"),
        (["--port", "0"], "--port must be a number from 1 to 65535, not '0'"),
        (["--port", "65536"], "--port must be a number from 1 to 65535, not '65536'"),
        (["--port=-1"], "--port must be a number from 1 to 65535, not '-1'"),
        (["--verbose"], "unknown option --verbose"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(arguments: list[str], message: str) -> None:
    result = run_script(RUN_STACK, *arguments)
    assert result.returncode == 1
    assert f"run_stack: error: {message}" in result.stderr
    assert "starting serve" not in result.stdout


def test_a_taken_port_is_refused_before_serve_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_script(RUN_STACK, "--port", str(port))
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr
    assert "starting serve" not in result.stdout


def test_help_prints_the_usage() -> None:
    result = run_script(RUN_STACK, "--help")
    assert result.returncode == 0
    assert "run_stack.sh [--port 8080]" in result.stdout


def test_a_missing_virtualenv_is_named(tmp_path: Path) -> None:
    # The script finds .venv next to its own folder: a copy in a tree without one is a checkout never set up.
    copy = tmp_path / "local_test" / "run_stack.sh"
    copy.parent.mkdir()
    shutil.copy2(RUN_STACK, copy)
    result = run_script(copy)
    assert result.returncode == 1
    assert f"no {tmp_path}/.venv/bin/serve: create the virtualenv first" in result.stderr
