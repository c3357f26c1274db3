"""`serve` for real: gunicorn workers on a free port, spoken to over HTTP, stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from sentiment.artifacts import load_model, save_model
from sentiment.predictor import Predictor
from sentiment.serving.front import BODY_TIMEOUT_SECONDS, HEADER_TIMEOUT_SECONDS, find_nginx
from tests.conftest import free_port, slow_clients, timed_request

SERVE = str(Path(sys.executable).with_name("serve"))


@dataclass
class Server:
    url: str
    process: subprocess.Popen

    def request(
        self, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.url + path, data=body, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()


def start(environment: dict[str, str]) -> Server:
    port = free_port()
    env = {**os.environ, "SENTIMENT_BIND_HOST": "127.0.0.1", "SAGEMAKER_BIND_TO_PORT": str(port), **environment}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen([SERVE], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with {process.returncode}: {process.stdout.read().decode()}")  # type: ignore[union-attr]
        try:
            if server.request("/ping")[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    raise TimeoutError("serve did not become ready in 60 s")


def stop(server: Server) -> tuple[int, str]:
    server.process.send_signal(signal.SIGTERM)
    output, _ = server.process.communicate(timeout=40)
    return server.process.returncode, output.decode()


@pytest.fixture(scope="module")
def model_dir(small_ensemble: Predictor, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("model")
    save_model(small_ensemble, directory)
    return directory


@pytest.fixture(scope="session")
def nginx() -> str:
    """nginx, which `serve` puts in front of gunicorn; CI (REQUIRE_NGINX=1) fails rather than skips without it."""
    found = find_nginx()
    if found is None:
        if os.environ.get("REQUIRE_NGINX") == "1":
            pytest.fail("REQUIRE_NGINX=1 but nginx is not installed")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    return found


@pytest.fixture(scope="module")
def server(model_dir: Path, nginx: str) -> Iterator[Server]:
    # float32, so answers can be compared exactly with the model's; "auto" is tested on its own below.
    server = start(
        {
            "SM_MODEL_DIR": str(model_dir),
            "MODEL_SERVER_WORKERS": "2",
            "SENTIMENT_PRECISION": "float32",
            "SENTIMENT_FRONT": "nginx",
        }
    )
    yield server
    status, output = stop(server)
    assert status == 0, output


@pytest.fixture(scope="module")
def gunicorn_alone(model_dir: Path) -> Iterator[Server]:
    """`serve` without nginx in front (SENTIMENT_FRONT=none): gunicorn on the port itself."""
    server = start({"SM_MODEL_DIR": str(model_dir), "MODEL_SERVER_WORKERS": "1", "SENTIMENT_FRONT": "none"})
    yield server
    status, output = stop(server)
    assert status == 0, output


def test_ping_and_a_verdict_over_http(server: Server, small_ensemble: Predictor, model_dir: Path) -> None:
    status, headers, body = server.request("/ping")
    assert status == 200 and json.loads(body)["model"] == load_model(model_dir).version
    review = "A superb, moving masterpiece. I loved it."
    status, headers, body = server.request("/invocations", review.encode(), {"Content-Type": "text/plain"})
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["score"] == pytest.approx(small_ensemble.predict_proba([review])[0])


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"hello", {"Content-Type": "application/xml"}, 415),
        (b"hello", {"Content-Type": "text/plain", "Accept": "image/png"}, 406),
        (b"\xff\xfe", {"Content-Type": "text/plain"}, 400),
        (b"[", {"Content-Type": "application/json"}, 400),
        (b"", {"Content-Type": "text/plain"}, 400),
        (b"x" * (6 * 1024 * 1024 + 1), {"Content-Type": "text/plain"}, 413),
    ],
)
def test_errors_over_http_and_the_server_keeps_serving(server: Server, body: bytes, headers: dict, status: int) -> None:
    answer, _response_headers, response_body = server.request("/invocations", body, headers)
    assert answer == status and json.loads(response_body)["message"]
    assert server.request("/invocations", b"fine film", {"Content-Type": "text/plain"})[0] == 200


def raw_exchange(url: str, request: bytes, timeout: float = 30) -> bytes:
    """Send `request` as it is, close the sending side, and read the whole answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


CUT_SHORT = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nsuperb!"


def test_a_body_cut_short_is_a_400_not_a_verdict(gunicorn_alone: Server) -> None:
    answer = raw_exchange(gunicorn_alone.url, CUT_SHORT)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"400", answer
    assert b"the body ended after 7 of the 100 bytes" in rest and b"label" not in rest


def test_behind_nginx_a_body_cut_short_is_never_scored(server: Server) -> None:
    # nginx reads the whole body before gunicorn sees the request; one that ends early is dropped and the
    # connection closed (RFC 9112, section 8: "the recipient MUST consider the message to be incomplete").
    requests_before = invocations(server)
    assert raw_exchange(server.url, CUT_SHORT) == b""
    assert invocations(server) == requests_before


def invocations(server: Server) -> float:
    """How many requests reached /invocations, by the app's own metrics."""
    metrics = server.request("/metrics")[2].decode()
    return sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("sentiment_requests_total") and 'route="/invocations"' in line
    )


def test_two_hundred_slow_clients_do_not_starve_ping_or_reviews(server: Server) -> None:
    with slow_clients(server.url, 200) as held:
        time.sleep(2.5)  # every connection has sent part of its headers
        answers = []
        for _ in range(5):
            answers.append(timed_request(f"{server.url}/ping"))
            answers.append(timed_request(f"{server.url}/invocations", b"fine film", {"Content-Type": "text/plain"}))
            time.sleep(0.3)
        still_held = len(held)
    assert still_held == 200
    assert all(status == 200 for status, _ in answers), answers
    assert max(seconds for _, seconds in answers) < 2.0, answers  # SageMaker's limit for /ping


def test_requests_that_stop_arriving_are_dropped_after_their_timeout(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    stalled_body = CUT_SHORT  # without closing: the rest never comes
    stalled_headers = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-"
    for request, timeout in ((stalled_body, BODY_TIMEOUT_SECONDS), (stalled_headers, HEADER_TIMEOUT_SECONDS)):
        started = time.monotonic()
        with socket.create_connection((host, int(port)), timeout=30) as connection:
            connection.sendall(request)
            assert connection.recv(65536) == b""  # closed without an answer: nothing was scored
        waited = time.monotonic() - started
        assert timeout - 1 <= waited <= timeout + 5, waited


def test_concurrent_requests_each_get_their_own_answer(server: Server, small_ensemble: Predictor) -> None:
    reviews = [f"{'superb ' * (i % 7)}{'awful ' * (i % 5)}film number {i}" for i in range(96)]
    expected = small_ensemble.predict_proba(reviews)

    def ask(review: str) -> float:
        status, _, body = server.request("/invocations", review.encode(), {"Content-Type": "text/plain"})
        assert status == 200
        return json.loads(body)["score"]

    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(ask, reviews))
    assert answers == pytest.approx(expected.tolist(), abs=1e-6)
    # The requests were batched: fewer model calls than reviews, counted across both workers.
    metrics = server.request("/metrics")[2].decode()
    calls = next(
        float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("sentiment_batch_size_count")
    )
    assert 0 < calls < len(reviews)


def test_a_multi_record_batch_in_order(server: Server, small_ensemble: Predictor) -> None:
    reviews = [f"{'loved ' * (i % 4)}{'hated ' * (i % 3)}review {i}" for i in range(500)]
    body = "".join(json.dumps(review) + "\n" for review in reviews).encode()
    status, _headers, answer = server.request(
        "/invocations", body, {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"}
    )
    assert status == 200
    scores = [json.loads(line)["score"] for line in answer.decode().splitlines()]
    assert scores == pytest.approx(small_ensemble.predict_proba(reviews).tolist(), abs=1e-6)


def test_metrics_add_up_every_worker(server: Server) -> None:
    for _ in range(6):
        server.request("/invocations", b"fine film", {"Content-Type": "text/plain"})
    status, _headers, body = server.request("/metrics")
    text = body.decode()
    assert status == 200 and "sentiment_requests_total" in text and "sentiment_predictions_total" in text
    assert "sentiment_model_info" in text


def test_the_default_precision_answers_as_float32_does_within_rounding(model_dir: Path) -> None:
    server = start({"SM_MODEL_DIR": str(model_dir), "MODEL_SERVER_WORKERS": "1"})
    try:
        reviews = [f"{'superb ' * (i % 5)}{'awful ' * (i % 3)}film {i}" for i in range(50)]
        body = "".join(json.dumps(review) + "\n" for review in reviews).encode()
        answer = server.request("/invocations", body, {"Content-Type": "application/jsonlines"})[2]
        scores = [json.loads(line)["score"] for line in answer.decode().splitlines()]
        assert scores == pytest.approx(load_model(model_dir).predict_proba(reviews).tolist(), abs=0.02)
    finally:
        assert stop(server)[0] == 0


@pytest.mark.parametrize("front", ["nginx", "none"])
def test_serve_leaves_nothing_behind_in_its_temporary_folder(model_dir: Path, tmp_path: Path, front: str) -> None:
    if front == "nginx" and find_nginx() is None:
        pytest.skip("nginx is not installed")
    server = start(
        {"SM_MODEL_DIR": str(model_dir), "MODEL_SERVER_WORKERS": "1", "SENTIMENT_FRONT": front, "TMPDIR": str(tmp_path)}
    )
    try:
        assert server.request("/invocations", b"loved it", {"Content-Type": "text/plain"})[0] == 200
        (run_folder,) = tmp_path.iterdir()  # nginx's state, the socket, the workers' metrics: one folder
        assert run_folder.name.startswith("sentiment-serve-")
    finally:
        assert stop(server)[0] == 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("front", ["nginx", "none"])
def test_torch_threads_sleep_when_idle_unless_the_operator_says_otherwise(model_dir: Path, front: str) -> None:
    # libgomp prints the wait it was loaded with (OMP_DISPLAY_ENV): a spin count of 0 is a passive wait. Every
    # process that loads torch (the supervisor checking the model, gunicorn's master and its workers) must
    # load it after `serve` set the policy, or its threads spin on cores that a large request shares.
    if front == "nginx" and find_nginx() is None:
        pytest.skip("nginx is not installed")
    for policy in (None, "ACTIVE"):
        environment = {"SM_MODEL_DIR": str(model_dir), "SENTIMENT_FRONT": front, "MODEL_SERVER_WORKERS": "1"}
        environment |= {"OMP_DISPLAY_ENV": "VERBOSE", **({"OMP_WAIT_POLICY": policy} if policy else {})}
        server = start(environment)
        status, output = stop(server)
        assert status == 0, output
        spin_counts = {line.split("=", 1)[1].strip() for line in output.splitlines() if "GOMP_SPINCOUNT" in line}
        if policy is None:
            assert spin_counts == {"'0'"}, output
        else:
            assert spin_counts and "'0'" not in spin_counts, output


def test_importing_serve_loads_no_torch() -> None:
    # The thread wait policy must be set before torch loads: nothing `serve` imports at its top may load it.
    code = "import sys, sentiment.cli.serve; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_tarball_in_the_model_folder_is_served(model_dir: Path, tmp_path: Path) -> None:
    packed = tmp_path / "model"
    packed.mkdir()
    with tarfile.open(packed / "model.tar.gz", "w:gz") as archive:
        for path in model_dir.iterdir():
            archive.add(path, arcname=path.name)
    server = start({"SM_MODEL_DIR": str(packed), "MODEL_SERVER_WORKERS": "1"})
    try:
        assert server.request("/invocations", b"loved it", {"Content-Type": "text/plain"})[0] == 200
    finally:
        assert stop(server)[0] == 0


def test_sigterm_finishes_requests_in_flight(model_dir: Path) -> None:
    server = start({"SM_MODEL_DIR": str(model_dir), "MODEL_SERVER_WORKERS": "1"})
    body = "".join(json.dumps(f"review {i} " + "superb " * 200) + "\n" for i in range(3000)).encode()
    with ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(server.request, "/invocations", body, {"Content-Type": "application/jsonlines"})
        time.sleep(0.3)
        status, output = stop(server)
        assert in_flight.result()[0] == 200
    assert status == 0, output
    assert "Shutting down" in output or "Handling signal: term" in output


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"SM_MODEL_DIR": "/nonexistent/model"}, "USE_BUNDLED_MODEL=1"),
        ({"MODEL_SERVER_WORKERS": "many", "USE_BUNDLED_MODEL": "1"}, "MODEL_SERVER_WORKERS"),
        ({"USE_BUNDLED_MODEL": "maybe"}, "USE_BUNDLED_MODEL"),
    ],
)
def test_serve_refuses_to_start_without_a_usable_model_or_settings(environment: dict, message: str) -> None:
    result = subprocess.run([SERVE], env={**os.environ, **environment}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and message in result.stderr


def test_serve_refuses_bfloat16_on_a_cpu_without_it_and_auto_scores_in_float32(model_dir: Path) -> None:
    avx2_only = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "SM_MODEL_DIR": str(model_dir)}
    port = free_port()
    result = subprocess.run(
        [SERVE],
        env={**os.environ, **avx2_only, "SENTIMENT_PRECISION": "bfloat16", "SAGEMAKER_BIND_TO_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "serve: bfloat16 scoring is not possible on this CPU (AVX2, without native bfloat16)" in result.stderr
    server = start({**avx2_only, "MODEL_SERVER_WORKERS": "1"})
    try:
        status, _, body = server.request("/invocations", b"loved it", {"Content-Type": "text/plain"})
        assert status == 200 and json.loads(body)["label"] in ("positive", "negative")
    finally:
        status, output = stop(server)
    assert status == 0 and "scoring in float32" in output


def test_serve_refuses_a_tampered_model(model_dir: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "model"
    tampered.mkdir()
    for path in model_dir.iterdir():
        (tampered / path.name).write_bytes(path.read_bytes())
    weights = bytearray((tampered / "weights.safetensors").read_bytes())
    weights[-1] ^= 0xFF
    (tampered / "weights.safetensors").write_bytes(bytes(weights))
    result = subprocess.run(
        [SERVE], env={**os.environ, "SM_MODEL_DIR": str(tampered)}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and "checksum" in result.stderr


def test_boto3s_invoke_endpoint_reaches_the_server(server: Server, aws_environment: dict) -> None:
    import boto3
    from botocore.exceptions import ClientError

    runtime = boto3.client("sagemaker-runtime", endpoint_url=server.url)
    response = runtime.invoke_endpoint(
        EndpointName="sentiment",
        Body=b"A superb, moving masterpiece.",
        ContentType="text/plain",
        Accept="application/json",
    )
    assert response["ContentType"] == "application/json"
    assert json.loads(response["Body"].read())["label"] in ("positive", "negative")
    with pytest.raises(ClientError) as refused:
        runtime.invoke_endpoint(EndpointName="sentiment", Body=b"   ", ContentType="text/plain")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
