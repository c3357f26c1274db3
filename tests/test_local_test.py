"""local_test/: make_test_dir.py's /opt/ml tree, and predict.sh and batch_local.sh against a real `serve`
(this virtualenv's, on the bundled model: no docker needed; tests/test_docker.py runs them against the image)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY, assert_same_verdicts, free_port

LOCAL_TEST = REPOSITORY / "local_test"
MAKE_TEST_DIR = LOCAL_TEST / "make_test_dir.py"
PAYLOADS = LOCAL_TEST / "payloads"
SCRIPTS = sorted([*LOCAL_TEST.glob("*.sh"), *(REPOSITORY / "docker").glob("*.sh"), REPOSITORY / "build_and_push.sh"])
SERVE = str(Path(sys.executable).with_name("serve"))


def make_test_dir(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MAKE_TEST_DIR), *map(str, args)], capture_output=True, text=True, timeout=60
    )


def script(name: str, *args: str | Path, url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(LOCAL_TEST / name), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "SERVE_URL": url, **env},
        timeout=120,
    )


# -- make_test_dir.py -------------------------------------------------------------------------------


def test_the_test_dir_mirrors_opt_ml(tmp_path: Path) -> None:
    out = tmp_path / "test_dir"
    result = make_test_dir("--output", out, "--train", "40", "--validation", "10", "--hyperparameters", '{"epochs": 3}')
    assert result.returncode == 0, result.stderr
    files = sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())
    assert files == [
        ".made-by-make_test_dir",
        "input/config/hyperparameters.json",
        "input/config/inputdataconfig.json",
        "input/config/resourceconfig.json",
        "input/data/train/train.jsonl",
        "input/data/validation/validation.jsonl",
    ]
    assert (out / "model").is_dir() and (out / "output").is_dir()
    config = out / "input" / "config"
    hyperparameters = json.loads((config / "hyperparameters.json").read_text())
    assert hyperparameters["epochs"] == 3  # an override keeps its JSON type
    assert hyperparameters["vocab_size"] == "300"  # the defaults are strings, as SageMaker stores them
    assert json.loads((config / "resourceconfig.json").read_text())["hosts"] == ["algo-1"]
    assert set(json.loads((config / "inputdataconfig.json").read_text())) == {"train", "validation"}
    train = [json.loads(line) for line in (out / "input/data/train/train.jsonl").read_text().splitlines()]
    assert len(train) == 40 and sum(record["label"] for record in train) == 20
    assert all(set(record) == {"text", "label"} and record["text"] for record in train)


def test_its_reviews_use_only_its_own_made_up_vocabulary(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_test_dir", MAKE_TEST_DIR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    vocabulary = {
        word
        for phrase in [*module.POSITIVE, *module.NEGATIVE, *module.SUBJECTS, *module.FILLER, "even"]
        for word in phrase.lower().split()
    }
    assert make_test_dir("--output", tmp_path / "t", "--train", "100").returncode == 0
    for line in (tmp_path / "t/input/data/train/train.jsonl").read_text().splitlines():
        assert set(re.findall(r"[a-z]+", json.loads(line)["text"].lower())) <= vocabulary


def test_it_replaces_its_own_test_dir_and_refuses_any_other_folder(tmp_path: Path) -> None:
    out = tmp_path / "test_dir"
    assert make_test_dir("--output", out).returncode == 0
    (out / "model" / "stale.bin").write_bytes(b"old")
    assert make_test_dir("--output", out, "--validation", "0").returncode == 0
    assert not (out / "model" / "stale.bin").exists()
    assert not (out / "input" / "data" / "validation").exists()

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    result = make_test_dir("--output", foreign)
    assert result.returncode == 1
    assert "was not made by this script: refusing to replace it" in result.stderr
    assert (foreign / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--train", "1"], "--train must be at least 2"),
        (["--hyperparameters", "[1]"], "--hyperparameters must be a JSON object"),
        (["--hyperparameters", "{epochs"], "argument --hyperparameters: invalid loads value"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = make_test_dir("--output", tmp_path / "t", *args)
    assert result.returncode == 2
    assert message in result.stderr


# -- the scripts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.name)
def test_each_script_says_what_it_is_and_stops_on_errors(path: Path) -> None:
    lines = path.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert lines[1].startswith(f"# {path.relative_to(REPOSITORY)}") or lines[1].startswith(f"# {path.name}")
    assert lines[2].startswith("# ")
    assert "set -euo pipefail" in lines[3:6]
    assert os.access(path, os.X_OK)
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_scripts_pass_shellcheck() -> None:
    result = subprocess.run(["shellcheck", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def start_serve(port: int, **environment: str) -> subprocess.Popen[bytes]:
    """This virtualenv's `serve` on the bundled model: what the image runs, without the image."""
    env = {
        **os.environ,
        "USE_BUNDLED_MODEL": "1",
        "SENTIMENT_BIND_HOST": "127.0.0.1",
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "MODEL_SERVER_WORKERS": "1",
        **environment,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.Popen([SERVE], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextmanager
def running_serve(**environment: str) -> Iterator[str]:
    port = free_port()
    process = start_serve(port, **environment)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"serve exited with {process.returncode}"
            assert time.monotonic() < deadline, "serve did not become ready in 60 s"
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=40)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_serve() as url:
        yield url


# What SageMaker sets in a Batch Transform container (MultiRecord, the default payload limit).
BATCH_TRANSFORM = {
    "SAGEMAKER_BATCH": "true",
    "SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD",
    "SAGEMAKER_MAX_PAYLOAD_IN_MB": "6",
    "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "1",
}


@pytest.fixture(scope="module")
def batch_server() -> Iterator[str]:
    with running_serve(**BATCH_TRANSFORM) as url:
        yield url


def post(url: str, body: bytes, content_type: str, accept: str = "*/*") -> bytes:
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": content_type, "Accept": accept}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def test_predict_posts_one_review_as_text_plain(server: str) -> None:
    result = script("predict.sh", PAYLOADS / "review.txt", url=server)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["label"] == "positive" and 0.5 <= answer["score"] <= 1
    assert "Content-Type text/plain" in result.stderr


@pytest.mark.parametrize(
    ("payload", "accept", "lines"),
    [("reviews.jsonl", "application/jsonlines", 4), ("reviews.csv", "text/csv", 4), ("reviews.json", "*/*", 1)],
)
def test_predict_takes_the_content_type_from_the_file_name(server: str, payload: str, accept: str, lines: int) -> None:
    result = script("predict.sh", PAYLOADS / payload, url=server, ACCEPT=accept)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == lines
    if payload.endswith(".csv"):
        labels = [line.split(",")[0] for line in result.stdout.splitlines()]
        assert labels == ["positive", "negative", "positive", "negative"]


def test_predict_shows_the_servers_error_and_fails(server: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = script("predict.sh", empty, url=server)
    assert result.returncode == 1
    assert '"error"' in result.stderr and "predict: error: the server refused the request" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.txt"], "no such file: missing.txt"),
        ([str(PAYLOADS / "review.txt"), "text/plain", "extra"], "usage:"),
        ([str(REPOSITORY / "README.md")], "cannot tell the content type"),
    ],
)
def test_predict_refuses_bad_arguments(args: list[str], message: str) -> None:
    result = script("predict.sh", *args, url="http://127.0.0.1:9")
    assert result.returncode == 1
    assert message in result.stderr


def test_predict_says_when_nothing_is_listening() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = script("predict.sh", PAYLOADS / "review.txt", url=url)
    assert result.returncode == 1
    assert f"nothing answers at {url}" in result.stderr


def reviews_file(path: Path, count: int, line_bytes: int = 0) -> Path:
    """`count` JSON Lines reviews, every third negative, the rest positive; padded to `line_bytes` when given."""
    words = {True: "wonderful superb moving brilliant ", False: "awful boring dreadful terrible "}
    lines = []
    for number in range(count):
        text = f"Review {number}: the film was " + words[number % 3 != 0] * 3
        if line_bytes:
            text = (text + words[number % 3 != 0] * (line_bytes // 20))[: line_bytes - len('{"text": ""}')]
        lines.append(json.dumps({"text": text}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_batch_splits_by_records_and_keeps_the_order(server: str, tmp_path: Path) -> None:
    data = reviews_file(tmp_path / "reviews.jsonl", 40)
    result = script("batch_local.sh", data, "--max-records", "7", url=server)
    assert result.returncode == 0, result.stderr
    assert "40 records in 6 batch(es)" in result.stderr
    output = (tmp_path / "reviews.jsonl.out").read_bytes()
    assert_same_verdicts(output, post(server, data.read_bytes(), "application/jsonlines", "application/jsonlines"))
    assert len(output.splitlines()) == 40


def test_batch_splits_by_payload_size_at_line_breaks(server: str, tmp_path: Path) -> None:
    # Ten reviews of 300,000 bytes (plus a line break): three fit in 1 MB, so batches of 3, 3, 3 and 1.
    data = reviews_file(tmp_path / "long.jsonl", 10, line_bytes=300_000)
    assert {len(line) for line in data.read_bytes().splitlines()} == {300_000}
    data.write_text(data.read_text().rstrip("\n"))  # a last line without a line break is a record too
    result = script("batch_local.sh", data, "--max-payload-mb", "1", url=server)
    assert result.returncode == 0, result.stderr
    assert "10 records in 4 batch(es)" in result.stderr
    assert re.findall(r"batch \d/4: (\d+) records", result.stderr) == ["3", "3", "3", "1"]
    output = (tmp_path / "long.jsonl.out").read_text().splitlines()
    assert [json.loads(line)["label"] for line in output] == [
        "negative" if n % 3 == 0 else "positive" for n in range(10)
    ]


def plain_reviews(path: Path, count: int) -> list[str]:
    """`count` one-line reviews in a text file, one per line (CRLF line ends in the middle, as Windows writes)."""
    reviews = [
        f"Review {n}: " + ("a superb, moving film, I loved it" if n % 3 else "an awful, boring mess, I hated it")
        for n in range(count)
    ]
    path.write_bytes(("\r\n".join(reviews[: count // 2]) + "\n" + "\n".join(reviews[count // 2 :]) + "\n").encode())
    return reviews


def test_batch_transform_answers_text_plain_one_line_per_record(batch_server: str, tmp_path: Path) -> None:
    reviews = plain_reviews(tmp_path / "reviews.txt", 200)
    result = script("batch_local.sh", tmp_path / "reviews.txt", url=batch_server)
    assert result.returncode == 0, result.stderr
    assert "200 records in 1 batch(es) of at most 6 MB each (MULTI_RECORD)" in result.stderr
    assert "as text/plain, Accept application/jsonlines" in result.stderr
    output = (tmp_path / "reviews.txt.out").read_bytes()
    one_by_one = "".join(json.dumps(review) + "\n" for review in reviews).encode()
    assert_same_verdicts(output, post(batch_server, one_by_one, "application/jsonlines", "application/jsonlines"))
    labels = [json.loads(line)["label"] for line in output.splitlines()]
    assert labels == ["positive" if n % 3 else "negative" for n in range(200)]


def test_batch_transform_refuses_what_would_lose_records(batch_server: str) -> None:
    body = b"A superb film.\nAn awful film.\n"
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(batch_server, body, "text/plain", "application/json")
    assert refused.value.code == 406
    assert "2 records split by line need one answer line each" in json.loads(refused.value.read())["message"]
    one = post(batch_server, b"A superb film.\n", "text/plain", "application/json")  # one record: one line
    assert b"\n" not in one and [answer["label"] for answer in json.loads(one)] == ["positive"]
    with pytest.raises(urllib.error.HTTPError) as empty:
        post(batch_server, b"A superb film.\n\nAn awful film.\n", "text/plain")
    assert empty.value.code == 400 and "review 2 is empty" in json.loads(empty.value.read())["message"]


def test_outside_batch_transform_a_text_file_batch_fails_loudly(server: str, tmp_path: Path) -> None:
    plain_reviews(tmp_path / "reviews.txt", 20)
    result = script("batch_local.sh", tmp_path / "reviews.txt", url=server)
    assert result.returncode == 1
    assert "batch 1: 20 records in, 1 predictions out" in result.stderr and "serve_local.sh --batch" in result.stderr
    assert not (tmp_path / "reviews.txt.out").exists()


def test_a_single_record_strategy_sends_one_record_per_request(tmp_path: Path) -> None:
    with running_serve(**{**BATCH_TRANSFORM, "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD"}) as url:
        data = reviews_file(tmp_path / "reviews.jsonl", 5)
        result = script("batch_local.sh", data, url=url)
        assert result.returncode == 0, result.stderr
        assert "5 records in 5 batch(es) of at most 6 MB and 1 records each (SINGLE_RECORD)" in result.stderr
        assert len((tmp_path / "reviews.jsonl.out").read_text().splitlines()) == 5


def test_batch_csv_answers_in_csv(server: str, tmp_path: Path) -> None:
    data = tmp_path / "reviews.csv"
    shutil.copy(PAYLOADS / "reviews.csv", data)
    result = script("batch_local.sh", data, "--max-records", "3", url=server)
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "reviews.csv.out").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["positive", "negative", "positive", "negative"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reviews.jsonl", "application/json"], "must be application/jsonlines, text/csv or text/plain"),
        (["reviews.md"], "cannot tell the content type"),
        (["reviews.jsonl", "--max-records", "x"], "--max-records must be a whole number"),
        (["reviews.jsonl", "--max-payload-mb", "0"], "--max-payload-mb must be a whole number of MB"),
        (["missing.jsonl"], "no such file"),
    ],
)
def test_batch_refuses_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    reviews_file(tmp_path / "reviews.jsonl", 3)
    reviews_file(tmp_path / "reviews.md", 3)
    result = subprocess.run(
        ["bash", str(LOCAL_TEST / "batch_local.sh"), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "SERVE_URL": "http://127.0.0.1:9"},
        timeout=60,
    )
    assert result.returncode == 1
    assert message in result.stderr


def test_batch_refuses_a_line_over_the_payload_limit(tmp_path: Path) -> None:
    data = tmp_path / "huge.jsonl"
    data.write_text(json.dumps({"text": "great " * 200_000}) + "\n")
    result = script("batch_local.sh", data, "--max-payload-mb", "1", url="http://127.0.0.1:9")
    assert result.returncode == 1
    assert "line 1 of" in result.stderr and "over the 1 MB payload limit" in result.stderr
    assert not (tmp_path / "huge.jsonl.out").exists()


def test_a_refused_batch_names_where_it_failed_and_writes_no_output(server: str, tmp_path: Path) -> None:
    data = reviews_file(tmp_path / "reviews.jsonl", 10)
    lines = data.read_text().splitlines()
    lines[8] = "not json"
    data.write_text("\n".join(lines) + "\n")
    result = script("batch_local.sh", data, "--max-records", "4", url=server)
    assert result.returncode == 1
    assert "batch 3 (records from line 9) was refused" in result.stderr
    assert "malformed JSON in line 1" in result.stderr
    assert not (tmp_path / "reviews.jsonl.out").exists()
    assert len(list((tmp_path / "reviews.jsonl.out.parts").glob("*.out"))) == 2

    # Fixed, it resumes: the two batches scored before are not sent again, the rest are.
    lines[8] = json.dumps({"text": "A dreadful, boring film."})
    data.write_text("\n".join(lines) + "\n")
    requests_before = invocations_count(server)
    result = script("batch_local.sh", data, "--max-records", "4", url=server)
    assert result.returncode == 0, result.stderr
    assert "resumed: 2 of 3 batch(es) were scored before" in result.stderr
    assert invocations_count(server) - requests_before == 1
    output = (tmp_path / "reviews.jsonl.out").read_bytes()
    assert_same_verdicts(output, post(server, data.read_bytes(), "application/jsonlines", "application/jsonlines"))
    assert not (tmp_path / "reviews.jsonl.out.parts").exists()


def test_kept_answers_of_a_changed_batch_or_another_model_are_not_reused(server: str, tmp_path: Path) -> None:
    data = reviews_file(tmp_path / "reviews.jsonl", 8)
    parts = tmp_path / "reviews.jsonl.out.parts"
    parts.mkdir()
    (parts / ("0" * 64 + ".out")).write_text("stale\n" * 4)  # some other batch's answer: never matches
    result = script("batch_local.sh", data, "--max-records", "4", url=server)
    assert result.returncode == 0, result.stderr
    assert "resumed" not in result.stderr
    assert b"stale" not in (tmp_path / "reviews.jsonl.out").read_bytes()


def invocations_count(server: str) -> float:
    """POST /invocations answered so far, from the server's own Prometheus metrics."""
    with urllib.request.urlopen(f"{server}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("sentiment_requests_total{") and 'route="/invocations"' in line
    )


def test_a_failed_final_write_keeps_the_scored_batches(server: str, tmp_path: Path) -> None:
    data = reviews_file(tmp_path / "reviews.jsonl", 8)
    (tmp_path / "reviews.jsonl.out.partial").symlink_to(tmp_path / "missing" / "folder")  # cp cannot write there
    result = script("batch_local.sh", data, "--max-records", "4", url=server)
    assert result.returncode == 1
    assert "cannot write" in result.stderr and "the scored batches stay in" in result.stderr
    assert not (tmp_path / "reviews.jsonl.out").exists()
    assert len(list((tmp_path / "reviews.jsonl.out.parts").glob("*.out"))) == 2


def test_batch_waits_for_a_server_still_loading_its_model(tmp_path: Path) -> None:
    data = reviews_file(tmp_path / "reviews.jsonl", 5)
    port = free_port()
    process = start_serve(port)
    try:
        # Once the port is bound, the model may still be loading (/ping 503): the script must wait, not fail.
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "serve did not bind its port"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        result = script("batch_local.sh", data, url=f"http://127.0.0.1:{port}")
        serve_state = "running" if process.poll() is None else f"exited {process.returncode}"
        assert result.returncode == 0, f"{result.stderr}\nserve: {serve_state}"
        assert len((tmp_path / "reviews.jsonl.out").read_text().splitlines()) == 5
        assert process.poll() is None, "the batch was answered by something other than this serve"
    finally:
        process.terminate()
        process.wait(timeout=40)
