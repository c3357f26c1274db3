"""Shared fixtures: small aclImdb datasets, the real archive's location, moto's server, a small trained model."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sentiment.hyperparameters import parse_hyperparameters
from sentiment.predictor import Predictor
from sentiment.training import fit
from tests.builders import imdb_files, write_archive, write_tree

REPOSITORY = Path(__file__).resolve().parent.parent
SHARED_ARCHIVE = REPOSITORY.parent / "shared" / "data" / "aclImdb_v1.tar.gz"


@pytest.fixture
def small_imdb_files() -> dict[str, bytes]:
    return imdb_files(per_folder=12)


@pytest.fixture
def small_imdb_archive(tmp_path: Path, small_imdb_files: dict[str, bytes]) -> Path:
    return write_archive(small_imdb_files, tmp_path / "aclImdb_v1.tar.gz")


@pytest.fixture
def small_imdb_folder(tmp_path: Path, small_imdb_files: dict[str, bytes]) -> Path:
    return write_tree(small_imdb_files, tmp_path / "extracted")


@pytest.fixture(scope="session")
def shared_archive() -> Path:
    if not SHARED_ARCHIVE.is_file():
        # CI sets REQUIRE_SHARED_DATA=1: there a missing archive is a failure, never a quiet skip.
        if os.environ.get("REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"the real IMDb archive is not at {SHARED_ARCHIVE}")
        pytest.skip(f"the real IMDb archive is not at {SHARED_ARCHIVE}")
    return SHARED_ARCHIVE


# Scores of the same review may differ in their last digits between batch groupings, thread counts and CPUs
# (float sums in another order; oneDNN picks kernels by shape and CPU): compare them within this, never bytes.
SCORE_TOLERANCE = 1e-4


def assert_same_verdicts(answer: bytes, expected: bytes) -> None:
    """Two JSON Lines answers hold the same verdicts, record for record, scores within SCORE_TOLERANCE."""
    got = [json.loads(line) for line in answer.decode().splitlines()]
    want = [json.loads(line) for line in expected.decode().splitlines()]
    assert len(got) == len(want), f"{len(got)} answers, expected {len(want)}"
    for number, (one, other) in enumerate(zip(got, want, strict=True), start=1):
        assert set(one) == set(other), f"record {number}: {sorted(one)} vs {sorted(other)}"
        assert one["score"] == pytest.approx(other["score"], abs=SCORE_TOLERANCE), f"record {number}"
        if abs(other["score"] - 0.5) > SCORE_TOLERANCE:
            assert one["label"] == other["label"], f"record {number}"


def engine_problem() -> str | None:
    """Why no docker engine can be used here, or None when one answers."""
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return "the docker command is not installed"
    except subprocess.TimeoutExpired:
        return "docker info did not answer in 30 s"
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["docker info failed"])[-1]
        return f"no docker engine answers ({last_line})"
    return None


@contextmanager
def slow_clients(url: str, count: int, byte_every_seconds: float = 1.0) -> Iterator[list[socket.socket]]:
    """`count` connections to `url` that send a request's headers one byte a second (slowloris), until the
    block ends; the connections the server has closed are dropped from the list as they go."""
    host, port = url.removeprefix("http://").split(":")
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
    connections = [socket.create_connection((host, int(port)), timeout=10) for _ in range(count)]
    done = threading.Event()

    def trickle() -> None:
        sent = 0
        while not done.wait(byte_every_seconds) and sent < len(head):
            for connection in list(connections):
                try:
                    connection.send(head[sent : sent + 1])
                except OSError:
                    connections.remove(connection)
            sent += 1

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield connections
    finally:
        done.set()
        thread.join(timeout=10)
        for connection in connections:
            connection.close()


def timed_request(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, float]:
    """(status, seconds) of one request; status 0 when it failed or took over 30 s."""
    started = time.monotonic()
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError:
        status = 0
    return status, time.monotonic() - started


EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A port on 127.0.0.1 that nothing holds, below the kernel's ephemeral range.

    A port the kernel hands out (bind to 0) is freed again before the server under test binds it, and in that
    window the kernel may give it to any other socket: a container's published port, another test's helper.
    A probe then connects to that stranger and the test fails far from the cause. Below the ephemeral range the
    kernel never picks a port itself, so only a program asking for that very number can take it.
    """
    low = int(EPHEMERAL_PORTS.read_text().split()[0]) if EPHEMERAL_PORTS.exists() else 32768
    first = max(1024, low - 12000)
    candidates = random.sample(range(first, low), min(200, low - first))
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:  # held, or in TIME_WAIT from an earlier test's server
                continue
            return port
    raise RuntimeError(f"no free port on 127.0.0.1 among 200 tried in {first}..{low - 1}")


def wait_for_http(url: str, process: subprocess.Popen, seconds: float = 30.0) -> None:
    """Poll `url` until it answers (any HTTP status), failing early if `process` exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before answering {url}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


AWS_TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's standalone AWS server in its own process; yields its endpoint URL."""
    port = free_port()
    executable = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(executable), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{endpoint}/moto-api/", process)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fake credentials and a region, in this process and for the subprocesses it starts."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in AWS_TEST_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    return dict(os.environ)


@pytest.fixture(scope="session")
def small_ensemble() -> Predictor:
    """An ensemble trained in a few seconds on made-up reviews (separable by their sentiment words)."""
    from tests.test_training import SMALL, made_up

    hp = parse_hyperparameters([*SMALL, "--model", "ensemble", "--epochs", "3", "--negation_window", "3"])
    return fit(hp, made_up(200, 1), made_up(60, 2), report=lambda line: None).predictor
