"""sentiment-drift end to end, on capture files the real serving app's answers were recorded in: the app
(`sentiment.serving.app`) serves over HTTP behind local_test/data_capture.py, SageMaker's Data Capture
stand-in, which writes what it relays in SageMaker's format; then the command reads the folder, or the
same files on moto's S3, and judges them against the model card."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
from werkzeug.serving import make_server

from sentiment.artifacts import save_model
from sentiment.cli.drift import main
from sentiment.contract import ServingSettings
from sentiment.data.table import ReviewTable
from sentiment.evaluation import card_traffic, model_card
from sentiment.hyperparameters import parse_hyperparameters
from sentiment.predictor import Predictor
from sentiment.serving.app import create_app
from tests.builders import make_review
from tests.conftest import REPOSITORY, free_port, wait_for_http

RECORDER = REPOSITORY / "local_test" / "data_capture.py"
REGION = "eu-west-1"
# Each request's content type and Accept, in turn: every input the server accepts, every answer it gives.
FORMATS = [
    ("text/plain", None),
    ("application/json", "application/json"),
    ("application/jsonlines", "application/jsonlines"),
    ("text/csv", "text/csv"),
    ("application/json", "text/plain"),
]


def reviews(count: int, seed: int, positive_share: float = 0.5) -> list[str]:
    """Made-up reviews of 16 to 116 words, like the small model's training reviews in their words."""
    rng = random.Random(seed)
    return [make_review(rng, rng.random() < positive_share, words=rng.randrange(16, 120, 4)) for _ in range(count)]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, small_ensemble: Predictor) -> Path:
    """The small ensemble with a card whose traffic figures come from 600 held-out made-up reviews."""
    folder = tmp_path_factory.mktemp("model")
    save_model(small_ensemble, folder)
    validation = ReviewTable.from_columns(text=reviews(600, 1), label=[0] * 600)
    card = model_card(parse_hyperparameters([]), {"validation": validation}, {}, {}, 1.0, None)
    card["traffic"] = card_traffic(small_ensemble, validation, "validation")
    (folder / "card.json").write_text(json.dumps(card))
    return folder


@pytest.fixture(scope="module")
def serving(small_ensemble: Predictor) -> Iterator[str]:
    """The real serving app over HTTP."""
    app = create_app(replace(ServingSettings.from_environment({}), workers=1), load=lambda: small_ensemble)
    assert app.extensions["sentiment"].model.wait(10)
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def body_of(batch: list[str], content_type: str) -> bytes:
    if content_type == "text/plain":
        return batch[0].encode()
    if content_type == "application/jsonlines":
        return "".join(json.dumps({"text": review}) + "\n" for review in batch).encode()
    if content_type == "text/csv":
        return "".join('"' + review.replace('"', '""') + '"\n' for review in batch).encode()
    return json.dumps({"instances": batch} if len(batch) > 2 else batch).encode()


def record_traffic(serve_url: str, capture: Path, texts: list[str], batch: int = 3) -> str:
    """Send `texts` through the recorder in front of `serve_url`, in every format; the recorder's output."""
    port = free_port()
    recorder = subprocess.Popen(
        [sys.executable, str(RECORDER), "--serve-url", serve_url, "--capture", str(capture), "--port", str(port),
         "--endpoint", "sentiment", "--flush-seconds", "600"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", recorder)
        start, turn = 0, 0
        while start < len(texts):
            content_type, accept = FORMATS[turn % len(FORMATS)]
            size = 1 if content_type == "text/plain" else batch
            headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
            # Every other request at InvokeEndpoint's own path, as the Lambda relay's boto3 client calls it.
            path = "/invocations" if turn % 2 else "/endpoints/sentiment/invocations"
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}", body_of(texts[start : start + size], content_type), headers
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
            start, turn = start + size, turn + 1
        # A refused request is relayed as serve answered it and not captured: it holds no verdict.
        empty = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", b"", {"Content-Type": "text/plain"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(empty, timeout=30)
        assert refused.value.code == 400
    finally:
        recorder.send_signal(signal.SIGTERM)
        output, _ = recorder.communicate(timeout=30)
    assert recorder.returncode == 0, output
    return output


def drift(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def verdicts(output: Path) -> dict[str, str]:
    summary = json.loads((output / "drift.json").read_text())
    return {figure["figure"]: figure["verdict"] for figure in summary["figures"]}


def test_the_recorder_writes_sagemakers_capture_format(tmp_path: Path, serving: str) -> None:
    printed = record_traffic(serving, tmp_path / "capture", reviews(12, 2))
    files = sorted((tmp_path / "capture").rglob("*.jsonl"))
    assert len(files) == 1 and f"wrote {files[0]} (5 records)" in printed
    # <DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl
    relative = files[0].relative_to(tmp_path / "capture").parts
    assert relative[:2] == ("sentiment", "AllTraffic") and [len(part) for part in relative[2:6]] == [4, 2, 2, 2]
    records = [json.loads(line) for line in files[0].read_text().splitlines()]
    first, second = records[0]["captureData"], records[1]["captureData"]
    assert first["endpointInput"]["encoding"] == "BASE64" and first["endpointInput"]["mode"] == "INPUT"
    assert first["endpointInput"]["observedContentType"] == "text/plain"
    assert second["endpointInput"]["encoding"] == "JSON" and json.loads(second["endpointInput"]["data"])
    assert second["endpointOutput"]["mode"] == "OUTPUT" and second["endpointOutput"]["encoding"] == "JSON"
    assert json.loads(second["endpointOutput"]["data"])["predictions"][0]["label"] in ("positive", "negative")
    assert records[3]["captureData"]["endpointInput"]["encoding"] == "CSV"
    assert records[4]["captureData"]["endpointOutput"]["encoding"] == "BASE64"  # a text/plain answer
    assert all(
        record["eventVersion"] == "0" and record["eventMetadata"]["inferenceTime"].endswith("Z") for record in records
    )


def test_traffic_like_the_training_data_is_within_range(
    tmp_path: Path, serving: str, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record_traffic(serving, tmp_path / "capture", reviews(300, 3))
    code, out, err = drift(
        capsys, str(tmp_path / "capture"), "--model", str(model), "--output", str(tmp_path / "report")
    )
    assert code == 0, err
    assert verdicts(tmp_path / "report") == dict.fromkeys(
        ("words_per_review", "unknown_word_share", "positive_share", "uncertain_share"), "within range"
    )
    assert "drift: read 116 records (300 reviews) from 1 files" in out and "0 of 4 figures drifted" in out
    summary = json.loads((tmp_path / "report" / "drift.json").read_text())
    assert summary["capture"]["reviews"] == 300 and summary["capture"]["skipped"] == 0
    assert all("p < 0.01" in figure["rule"] for figure in summary["figures"])
    html = (tmp_path / "report" / "drift.html").read_text()
    assert html.count("<svg") == 3 and "All 4 figures within range" in html
    # A rerun writes the same report again, and nothing else.
    before = {path.name: path.read_bytes() for path in (tmp_path / "report").iterdir()}
    assert drift(capsys, str(tmp_path / "capture"), "--model", str(model), "--output", str(tmp_path / "report"))[0] == 0
    assert {path.name: path.read_bytes() for path in (tmp_path / "report").iterdir()} == before


def test_short_texts_of_unknown_words_drift(
    tmp_path: Path, serving: str, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gibberish = [f"Qwzx{n} blorptastic{n}!" for n in range(150)]
    capture = tmp_path / "<i>capture</i>"  # a name the report must show as text, not as markup
    record_traffic(serving, capture, gibberish)
    code, out, _ = drift(capsys, str(capture), "--model", str(model), "--output", str(tmp_path / "report"))
    assert code == 0
    found = verdicts(tmp_path / "report")
    assert found["words_per_review"] == found["unknown_word_share"] == found["positive_share"] == "drifted"
    assert "drift: words_per_review: drifted" in out
    html = (tmp_path / "report" / "drift.html").read_text()
    assert "3 of 4 figures drifted" in html
    assert "<i>capture" not in html and "&lt;i&gt;capture&lt;/i&gt;" in html


def test_all_negative_traffic_drifts_in_its_verdicts_only(
    tmp_path: Path, serving: str, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record_traffic(serving, tmp_path / "capture", reviews(240, 4, positive_share=0.0))
    assert drift(capsys, str(tmp_path / "capture"), "--model", str(model), "--output", str(tmp_path / "report"))[0] == 0
    found = verdicts(tmp_path / "report")
    assert found["positive_share"] == "drifted"
    assert found["words_per_review"] == found["unknown_word_share"] == "within range"


def test_captures_on_s3_read_as_the_same_folder_would(
    tmp_path: Path,
    serving: str,
    model: Path,
    moto_server: str,
    aws_environment: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    record_traffic(serving, tmp_path / "capture", reviews(120, 5))
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name=REGION)
    bucket = f"capture-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    for path in (tmp_path / "capture").rglob("*.jsonl"):
        s3.put_object(
            Bucket=bucket, Key=f"data-capture/{path.relative_to(tmp_path / 'capture')}", Body=path.read_bytes()
        )
    s3.put_object(Bucket=bucket, Key="data-capture/sentiment/README.txt", Body=b"not a capture file")
    local = drift(capsys, str(tmp_path / "capture"), "--model", str(model), "--output", str(tmp_path / "local"))
    remote = drift(
        capsys, f"s3://{bucket}/data-capture/sentiment", "--model", str(model), "--output", str(tmp_path / "s3"),
        "--endpoint-url", moto_server, "--region", REGION,
    )  # fmt: skip
    assert local[0] == remote[0] == 0, remote[2]
    assert f"from 1 files in s3://{bucket}/data-capture/sentiment" in remote[1]
    from_folder = json.loads((tmp_path / "local" / "drift.json").read_text())
    from_s3 = json.loads((tmp_path / "s3" / "drift.json").read_text())
    assert {**from_s3, "source": ""} == {**from_folder, "source": ""}
    missing = drift(capsys, "s3://no-such-bucket-here/x", "--model", str(model), "--output", str(tmp_path / "none"),
                    "--endpoint-url", moto_server, "--region", REGION)  # fmt: skip
    assert (
        missing[0] == 1
        and missing[2].startswith("error: s3://no-such-bucket-here/x: ")
        and "NoSuchBucket" in missing[2]
    )
    assert missing[2].count("\n") == 1 and not (tmp_path / "none").exists()


def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "card.json").write_text(json.dumps({"model": "ensemble"}))
    (tmp_path / "empty").mkdir()
    cases = [
        ([str(tmp_path / "nowhere"), "--model", str(model)], "no such folder"),
        ([str(tmp_path / "empty"), "--model", str(model)], "no capture files"),
        ([str(tmp_path / "empty"), "--model", str(bare)], "holds no traffic figures to compare with: add them with"),
        ([str(tmp_path / "empty"), "--model", str(tmp_path)], "no model card"),
    ]
    for args, message in cases:
        code, _, err = drift(capsys, *args, "--output", str(report))
        assert code == 1 and err.startswith("error: ") and message in err and err.count("\n") == 1, err
        assert not report.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--serve-url", "ftp://127.0.0.1:1"], "--serve-url 'ftp://127.0.0.1:1' is not an http:// URL"),
        (["--port", "70000"], "--port 70000 is not a port number"),
        (["--flush-seconds", "0"], "--flush-seconds 0.0 must be above 0"),
        (["--endpoint", "../up"], "'../up' cannot be a folder name"),
        (["--capture", str(RECORDER)], "exists and is not a folder"),
    ],
)
def test_the_recorder_refuses_bad_options_in_one_line_and_creates_nothing(
    tmp_path: Path, options: list[str], message: str
) -> None:
    defaults = {"--serve-url": "http://127.0.0.1:1", "--capture": str(tmp_path / "capture"), "--port": "0"}
    defaults.update(dict(zip(options[::2], options[1::2], strict=True)))
    args = [part for pair in defaults.items() for part in pair]
    result = subprocess.run([sys.executable, str(RECORDER), *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and result.stderr.startswith("data-capture: error: ")
    assert message in result.stderr and result.stderr.count("\n") == 1 and result.stdout == ""
    assert not (tmp_path / "capture").exists()
