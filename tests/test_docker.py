"""The image for real (docker/Dockerfile, CPU variant): `train` and `serve` as SageMaker runs them, SIGTERM,
and local_test/'s scripts against the container.

They need a docker engine: without one they skip, except under CI (REQUIRE_DOCKER=1), where that is a failure.
The image is built once per session by `docker/build_image.sh --cpu`, which does nothing when an image built
from the same source exists (CI builds it before the suite; a cold build takes a few minutes).
SENTIMENT_TEST_IMAGE=NAME runs them against an image built elsewhere instead (the CUDA image, say), unbuilt here.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from sentiment.artifacts import load_model
from tests.conftest import REPOSITORY, assert_same_verdicts, engine_problem, free_port, slow_clients, timed_request

IMAGE = os.environ.get("SENTIMENT_TEST_IMAGE") or "sentiment:cpu"  # CI builds sentiment:cpu (build_image.sh --cpu)
LOCAL_TEST = REPOSITORY / "local_test"
PAYLOADS = LOCAL_TEST / "payloads"
# One gunicorn worker is enough for most tests here; test_every_worker_is_ready_once_ping_answers runs two.
ONE_WORKER = ("-e", "MODEL_SERVER_WORKERS=1")


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


@pytest.fixture(scope="session")
def image() -> str:
    problem = engine_problem()
    if problem is not None:
        # CI sets REQUIRE_DOCKER=1: there a missing engine is a failure, never a quiet skip.
        if os.environ.get("REQUIRE_DOCKER") == "1":
            pytest.fail(f"REQUIRE_DOCKER=1 but {problem}")
        pytest.skip(problem)
    if os.environ.get("SENTIMENT_TEST_IMAGE"):
        if docker("image", "inspect", IMAGE, check=False).returncode != 0:
            pytest.fail(f"SENTIMENT_TEST_IMAGE={IMAGE}: no such image here")
        return IMAGE
    build = subprocess.run(
        ["bash", str(REPOSITORY / "docker" / "build_image.sh"), "--cpu", "--tag", IMAGE],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if build.returncode != 0:
        pytest.fail(f"docker/build_image.sh --cpu failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}")
    return IMAGE


@dataclass
class Container:
    id: str
    url: str
    started: float  # time.monotonic() just before `docker run`

    def request(self, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, data=body, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def logs(self) -> str:
        result = docker("logs", self.id, check=False)
        return result.stdout + result.stderr

    def wait_until_ready(self, seconds: float = 120) -> float:
        """Seconds from `docker run` to the first 200 on /ping."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if self.request("/ping")[0] == 200:
                    return time.monotonic() - self.started
            except OSError:
                pass
            state = docker("inspect", "-f", "{{.State.Running}}", self.id, check=False)
            if state.returncode == 0 and state.stdout.strip() != "true":  # (not created yet: no such object)
                raise AssertionError(f"the container stopped before /ping answered:\n{self.logs()}")
            time.sleep(0.1)
        raise AssertionError(f"/ping did not answer 200 within {seconds} s:\n{self.logs()}")


@pytest.fixture
def start(image: str) -> Iterator:
    """start(*docker_run_options) runs `IMAGE serve` detached, port 8080 on a free local port; removed afterwards."""
    started: list[str] = []

    def run(*options: str, command: str = "serve") -> Container:
        before = time.monotonic()
        container_id = docker("run", "-d", "-p", "127.0.0.1::8080", *options, image, command).stdout.strip()
        started.append(container_id)
        address = docker("port", container_id, "8080/tcp").stdout.split()[0]
        return Container(container_id, f"http://{address}", before)

    yield run
    for container_id in started:
        docker("rm", "--force", container_id, check=False)


def make_test_dir(path: Path, *args: str) -> Path:
    result = subprocess.run(
        ["python3", str(LOCAL_TEST / "make_test_dir.py"), "--output", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return path


def train_local(image: str, test_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(LOCAL_TEST / "train_local.sh"), image],
        capture_output=True,
        text=True,
        env={**os.environ, "TEST_DIR": str(test_dir)},
        timeout=600,
    )


@dataclass
class Trained:
    test_dir: Path
    result: subprocess.CompletedProcess[str]
    seconds: float


@pytest.fixture(scope="module")
def trained(image: str, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The tiny default hyperparameters of make_test_dir.py, trained in the container on 300 + 100 reviews."""
    test_dir = make_test_dir(tmp_path_factory.mktemp("trained") / "test_dir")
    before = time.monotonic()
    result = train_local(image, test_dir)
    return Trained(test_dir, result, time.monotonic() - before)


def test_the_image_holds_train_serve_and_the_program_and_no_build_tools(image: str) -> None:
    probe = r"""
        echo "train=$(command -v train) serve=$(command -v serve)"
        echo "program=$SAGEMAKER_PROGRAM code=$(ls /opt/ml/code)"
        python3 -c 'import sys; print(f"python={sys.version_info[0]}.{sys.version_info[1]}")'
        python -c 'from sentiment.artifacts import load_model; print("bundled=" + load_model().family)'
        echo "build_tools=$(command -v gcc cc make g++ | tr '\n' ' ')"
        echo "leftovers=$(ls -d /wheelhouse /src /root/.cache/pip /pip-source 2>/dev/null | tr '\n' ' ')"
        echo "user=$(id -un) serve_user=$(id -un sentiment)"
        echo "pip=$(ls /opt/venv/bin | grep -c '^pip') nginx=$(command -v nginx) front=$SENTIMENT_FRONT"
        python -c 'import pip' 2>/dev/null && echo "pip_module=yes" || echo "pip_module=no"
    """
    result = docker("run", "--rm", image, "bash", "-c", probe)
    facts = dict(word.split("=", 1) for word in result.stdout.split() if "=" in word)
    assert facts["train"] == "/opt/venv/bin/train" and facts["serve"] == "/opt/venv/bin/serve"
    assert facts["program"] == "train_sentiment.py" and facts["code"] == "train_sentiment.py"
    assert tuple(map(int, facts["python"].split("."))) >= (3, 11)
    assert facts["bundled"] == "ensemble"
    assert facts["build_tools"] == "" and facts["leftovers"] == ""
    assert facts["user"] == "root" and facts["serve_user"] == "sentiment"  # SageMaker starts containers as root
    assert facts["pip"] == "0" and facts["pip_module"] == "no"  # nothing installs at run time
    assert facts["nginx"] == "/usr/sbin/nginx" and facts["front"] == "nginx"
    architecture = docker("image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", image).stdout.strip()
    assert architecture == "linux/amd64"  # what SageMaker's x86_64 instances run, whatever built it


def test_the_health_check_follows_ping_and_passes_train_containers(start, image: str) -> None:
    health = json.loads(docker("image", "inspect", "-f", "{{json .Config.Healthcheck}}", image).stdout)
    assert health["Test"] == ["CMD", "/usr/local/bin/sentiment-healthcheck"]
    # The image's own check, run every second instead of every 15 s so the test need not wait.
    container = start(
        "-e", "USE_BUNDLED_MODEL=1", *ONE_WORKER, "--health-interval", "1s", "--health-start-period", "60s"
    )
    container.wait_until_ready()
    deadline = time.monotonic() + 30
    while (status := docker("inspect", "-f", "{{.State.Health.Status}}", container.id).stdout.strip()) != "healthy":
        assert time.monotonic() < deadline, f"health {status}: {container.logs()}"
        time.sleep(0.5)
    log = json.loads(docker("inspect", "-f", "{{json .State.Health.Log}}", container.id).stdout)
    assert log[-1]["ExitCode"] == 0 and "/ping: 200" in log[-1]["Output"]
    # In a container started as anything but serve (train, here the check itself) there is no server to ask.
    assert docker("run", "--rm", image, "sentiment-healthcheck", check=False).returncode == 0


def test_two_hundred_slow_clients_do_not_starve_the_containers_ping(start) -> None:
    container = start("-e", "USE_BUNDLED_MODEL=1", *ONE_WORKER)
    container.wait_until_ready()
    with slow_clients(container.url, 200) as held:
        time.sleep(2.5)
        answers = [timed_request(f"{container.url}/ping") for _ in range(5)]
        answers.append(timed_request(f"{container.url}/invocations", b"fine film", {"Content-Type": "text/plain"}))
        assert len(held) == 200
    assert all(status == 200 and seconds < 2.0 for status, seconds in answers), answers


def test_train_writes_a_model_the_package_loads(trained: Trained) -> None:
    assert trained.result.returncode == 0, trained.result.stdout + trained.result.stderr
    print(f"train in the container: {trained.seconds:.1f} s")
    model = trained.test_dir / "model"
    assert (model / "model.json").is_file() and not (trained.test_dir / "output" / "failure").exists()
    assert "epoch=1 train_loss=" in trained.result.stdout  # the metric line SageMaker's regexes read
    predictor = load_model(model)
    good, bad = predictor.predict_proba(["Superb, moving, wonderful: loved it.", "Awful, boring, dreadful: hated it."])
    assert 0 <= bad < 0.5 < good <= 1


@pytest.mark.parametrize(
    ("hyperparameters", "reason"),
    [({"epochs": "lots"}, "'lots' is not a whole number"), ({"colour": "blue"}, "unknown hyperparameter '--colour'")],
    ids=["bad-value", "unknown-name"],
)
def test_bad_hyperparameters_fail_with_the_failure_file(
    image: str, tmp_path: Path, hyperparameters: dict[str, str], reason: str
) -> None:
    test_dir = make_test_dir(tmp_path / "test_dir", "--train", "20", "--hyperparameters", json.dumps(hyperparameters))
    result = train_local(image, test_dir)
    assert result.returncode != 0
    failure = (test_dir / "output" / "failure").read_text()
    assert reason in failure
    assert "output/failure says:" in result.stderr
    assert not (test_dir / "model" / "model.json").exists()


def test_serve_answers_on_the_bundled_model_soon_after_start(start) -> None:
    container = start("-e", "USE_BUNDLED_MODEL=1", *ONE_WORKER)
    cold_start = container.wait_until_ready()
    print(f"cold start (docker run to the first 200 on /ping, bundled model): {cold_start:.1f} s")
    assert cold_start < 60
    status, body = container.request(
        "/invocations", (PAYLOADS / "review.txt").read_bytes(), {"Content-Type": "text/plain"}
    )
    assert status == 200 and json.loads(body)["label"] == "positive"
    status, body = container.request(
        "/invocations", (PAYLOADS / "reviews.csv").read_bytes(), {"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    assert status == 200
    assert [line.split(",")[0] for line in body.decode().splitlines()] == ["positive", "negative"] * 2
    status, body = container.request("/execution-parameters")
    assert status == 200 and json.loads(body)["BatchStrategy"] == "MULTI_RECORD"


def test_the_server_runs_unprivileged(start) -> None:
    container = start("-e", "USE_BUNDLED_MODEL=1", "-e", "MODEL_SERVER_WORKERS=2")
    container.wait_until_ready()
    probe = r"""
import pathlib
for proc in pathlib.Path("/proc").glob("[0-9]*"):
    try:
        command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        uid = next(line.split()[1] for line in (proc / "status").read_text().splitlines() if line.startswith("Uid:"))
    except (OSError, StopIteration):
        continue
    print(proc.name, uid, command)
"""
    lines = docker("exec", container.id, "python3", "-c", probe).stdout.splitlines()
    processes = [fields for fields in (line.split(maxsplit=2) for line in lines) if len(fields) == 3]
    supervisor = [process for process in processes if process[2].rstrip().endswith("bin/serve")]
    gunicorn = [process for process in processes if "sentiment.cli.serve --gunicorn-on" in process[2]]
    nginx = [process for process in processes if process[2].startswith("nginx")]
    assert len(supervisor) == 1 and len(gunicorn) == 3 and len(nginx) == 2  # arbiter + 2 workers; master + worker
    assert all(uid != "0" for _, uid, _ in supervisor + gunicorn + nginx)
    assert any(pid == "1" and "tini" in command for pid, _, command in processes)


def test_every_worker_is_ready_once_ping_answers(start) -> None:
    container = start("-e", "USE_BUNDLED_MODEL=1", "-e", "MODEL_SERVER_WORKERS=2")
    container.wait_until_ready()
    body, headers = (PAYLOADS / "review.txt").read_bytes(), {"Content-Type": "text/plain"}
    statuses = [container.request("/invocations", body, headers)[0] for _ in range(20)]
    assert statuses == [200] * 20


def test_serve_answers_with_the_trained_model_as_the_package_does(trained: Trained, start) -> None:
    assert trained.result.returncode == 0, trained.result.stderr
    container = start("-v", f"{trained.test_dir / 'model'}:/opt/ml/model:ro", *ONE_WORKER)
    container.wait_until_ready()
    reviews = [json.loads(line)["text"] for line in (PAYLOADS / "reviews.jsonl").read_text().splitlines()]
    status, body = container.request(
        "/invocations",
        "".join(json.dumps(review) + "\n" for review in reviews).encode(),
        {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"},
    )
    assert status == 200, body
    served = [json.loads(line)["score"] for line in body.decode().splitlines()]
    local = load_model(trained.test_dir / "model").predict_proba(reviews)
    assert served == pytest.approx(list(local), abs=1e-5)


def test_sigterm_stops_serve_gracefully_and_at_once(start) -> None:
    container = start("-e", "USE_BUNDLED_MODEL=1")
    container.wait_until_ready()
    before = time.monotonic()
    docker("stop", "--time", "20", container.id, timeout=60)
    seconds = time.monotonic() - before
    exit_code = docker("inspect", "-f", "{{.State.ExitCode}}", container.id).stdout.strip()
    print(f"docker stop: {seconds:.1f} s, exit code {exit_code}")
    assert exit_code == "0", container.logs()  # gunicorn's graceful stop; 137 would be a kill after the timeout
    assert seconds < 10
    assert "Shutting down: Master" in container.logs()


def test_sigterm_stops_train_at_once(image: str, tmp_path: Path) -> None:
    test_dir = make_test_dir(tmp_path / "test_dir", "--hyperparameters", '{"epochs": "200", "patience": "0"}')
    name = f"sentiment-test-{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen(
        ["docker", "run", "--rm", "--name", name, "--hostname", "algo-1", "-v", f"{test_dir}:/opt/ml", image, "train"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # until training is under way
            if "epoch=1 " in line:
                break
        before = time.monotonic()
        docker("stop", "--time", "20", name, timeout=60)
        status = process.wait(timeout=60)
        seconds = time.monotonic() - before
    finally:
        docker("rm", "--force", name, check=False)
        process.kill()
    print(f"docker stop during training: {seconds:.1f} s, exit status {status}")
    assert seconds < 10 and status == 143  # SIGTERM reached the job through tini (a kill would give 137)


@contextmanager
def serve_local(image: str, tmp_path: Path, *options: str, **environment: str) -> Iterator[Container]:
    """local_test/serve_local.sh IMAGE OPTIONS... on a free port, ready; stopped with `docker stop` afterwards,
    which must leave no container behind (the script runs it with --rm)."""
    port = free_port()
    name = f"sentiment-test-{uuid.uuid4().hex[:8]}"
    log = (tmp_path / "serve_local.log").open("w")
    process = subprocess.Popen(
        ["bash", str(LOCAL_TEST / "serve_local.sh"), image, *options, "--name", name, *ONE_WORKER],
        env={**os.environ, "PORT": str(port), **environment},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        container = Container(name, f"http://127.0.0.1:{port}", time.monotonic())
        container.wait_until_ready()
        yield container
    finally:
        docker("stop", "--time", "20", name, check=False, timeout=60)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        left = docker("ps", "-a", "-q", "--filter", f"name={name}").stdout.strip()
        docker("rm", "--force", name, check=False)
    assert left == ""


def test_a_batch_transform_run_of_the_image_answers_every_text_line(image: str, tmp_path: Path) -> None:
    """As Batch Transform runs the image: its variables set (serve_local.sh --batch), then a text/plain file
    of 200 lines split by line into MultiRecord requests (batch_local.sh): 200 answers, in order."""
    with serve_local(image, tmp_path, "--bundled", "--batch") as container:
        url = container.url
        reviews = [
            f"Review {n}: " + ("a superb, moving film, I loved it" if n % 3 else "an awful, boring mess, I hated it")
            for n in range(200)
        ]
        data = tmp_path / "reviews.txt"
        data.write_text("\n".join(reviews) + "\n")
        batch = subprocess.run(
            ["bash", str(LOCAL_TEST / "batch_local.sh"), str(data)],
            capture_output=True,
            text=True,
            env={**os.environ, "SERVE_URL": url},
            timeout=120,
        )
        assert batch.returncode == 0, batch.stderr
        assert "200 records in 1 batch(es) of at most 6 MB each (MULTI_RECORD)" in batch.stderr
        output = (tmp_path / "reviews.txt.out").read_bytes()
        one_by_one = "".join(json.dumps(review) + "\n" for review in reviews).encode()
        status, expected = container.request(
            "/invocations", one_by_one, {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"}
        )
        assert status == 200
        assert_same_verdicts(output, expected)
        assert [json.loads(line)["label"] for line in output.splitlines()] == [
            "positive" if n % 3 else "negative" for n in range(200)
        ]


def test_serve_local_serves_the_trained_model_and_the_scripts_talk_to_it(trained: Trained, tmp_path: Path) -> None:
    assert trained.result.returncode == 0, trained.result.stderr
    with serve_local(IMAGE, tmp_path, TEST_DIR=str(trained.test_dir)) as container:
        env = {**os.environ, "SERVE_URL": container.url}
        predict = subprocess.run(
            ["bash", str(LOCAL_TEST / "predict.sh"), str(PAYLOADS / "review.txt")],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert predict.returncode == 0, predict.stderr
        assert json.loads(predict.stdout)["label"] in ("positive", "negative")

        data = tmp_path / "reviews.jsonl"
        data.write_text("".join((PAYLOADS / "reviews.jsonl").read_text() for _ in range(6)))  # 24 lines
        batch = subprocess.run(
            ["bash", str(LOCAL_TEST / "batch_local.sh"), str(data), "--max-records", "5"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert batch.returncode == 0, batch.stderr
        assert "24 records in 5 batch(es)" in batch.stderr
        output = (tmp_path / "reviews.jsonl.out").read_bytes()
        whole = container.request(
            "/invocations",
            data.read_bytes(),
            {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"},
        )
        assert whole[0] == 200
        assert_same_verdicts(output, whole[1])
