"""sentiment.serving.app through Flask's test client: every route, content type, Accept, status and error."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from sentiment.contract import MAX_PAYLOAD_MB, ServingSettings
from sentiment.predictor import Predictor
from sentiment.serving.app import create_app
from sentiment.serving.predict import MAX_EXPLAINED_REVIEWS

POSITIVE = "A superb, moving masterpiece. I loved it."
NEGATIVE = "An awful, boring, dreadful waste of time. I hated it."


def settings(**changes: object) -> ServingSettings:
    return replace(ServingSettings.from_environment({}), workers=2, **changes)  # type: ignore[arg-type]


def ready_app(predictor: Predictor, **changes: object) -> Flask:
    app = create_app(settings(**changes), load=lambda: predictor)
    assert app.extensions["sentiment"].model.wait(10)
    return app


@pytest.fixture
def client(small_ensemble: Predictor) -> FlaskClient:
    return ready_app(small_ensemble).test_client()


def post(client: FlaskClient, body: bytes | str, content_type: str, accept: str | None = None, **kwargs: object):
    headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
    return client.post("/invocations", data=body, headers=headers, **kwargs)  # type: ignore[arg-type]


def test_ping_answers_once_the_model_is_loaded(client: FlaskClient, small_ensemble: Predictor) -> None:
    response = client.get("/ping")
    assert response.status_code == 200
    assert response.json == {"status": "ready", "model": small_ensemble.version, "family": "ensemble"}


def test_ping_is_503_while_loading_and_after_a_failed_load(small_ensemble: Predictor) -> None:
    release = threading.Event()

    def slow_load() -> Predictor:
        release.wait(10)
        return small_ensemble

    app = create_app(settings(timeout=1), load=slow_load)
    response = app.test_client().get("/ping")
    assert response.status_code == 503 and "still loading" in response.json["message"]
    # A request waits for the model (up to the timeout) rather than failing at once.
    assert post(app.test_client(), POSITIVE, "text/plain").status_code == 503
    threading.Timer(0.3, release.set).start()
    assert post(app.test_client(), POSITIVE, "text/plain").status_code == 200
    assert app.test_client().get("/ping").status_code == 200

    def broken_load() -> Predictor:
        raise OSError("the disk is gone")

    broken = create_app(settings(), load=broken_load)
    broken.extensions["sentiment"].model.wait(10)
    response = broken.test_client().get("/ping")
    assert response.status_code == 503 and "could not be loaded" in response.json["message"]
    assert "the disk is gone" not in response.text  # the reason goes to the log, not to clients


def test_a_plain_text_review_gets_a_json_verdict(client: FlaskClient, small_ensemble: Predictor) -> None:
    response = post(client, POSITIVE, "text/plain")
    assert response.status_code == 200 and response.mimetype == "application/json"
    (expected,) = small_ensemble.predict([POSITIVE])
    assert response.json == {"label": "positive", "score": pytest.approx(expected.score)}


BOTH = ["positive", "negative"]


def labels_of_json_list(response: TestResponse) -> list[str]:
    return [prediction["label"] for prediction in response.json]


def labels_of_lines(response: TestResponse) -> list[str]:
    lines = response.text.splitlines()
    if response.mimetype == "application/jsonlines":
        return [json.loads(line)["label"] for line in lines]
    return [line.replace(",", " ").split()[0] for line in lines]


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "media", "labels_of"),
    [
        (json.dumps([POSITIVE, NEGATIVE]), "application/json", None, "application/json", labels_of_json_list),
        (
            json.dumps({"instances": [POSITIVE, NEGATIVE]}),
            "application/json",
            "application/json",
            "application/json",
            lambda r: [p["label"] for p in r.json["predictions"]],
        ),
        (
            json.dumps(POSITIVE) + "\n" + json.dumps({"text": NEGATIVE}) + "\n",
            "application/jsonlines",
            None,
            "application/jsonlines",
            labels_of_lines,
        ),
        (f'"{POSITIVE}"\n"{NEGATIVE}"\n', "text/csv", None, "text/csv", labels_of_lines),
        (f'"{POSITIVE}"\n"{NEGATIVE}"\n', "text/csv", "text/plain", "text/plain", labels_of_lines),
        (
            json.dumps([POSITIVE, NEGATIVE]),
            "application/json",
            "application/jsonlines",
            "application/jsonlines",
            labels_of_lines,
        ),
        (json.dumps([POSITIVE, NEGATIVE]), "application/json", "text/csv", "text/csv", labels_of_lines),
    ],
)
def test_each_content_type_and_accept(
    client: FlaskClient, body: str, content_type: str, accept: str | None, media: str, labels_of
) -> None:
    response = post(client, body, content_type, accept)
    assert response.status_code == 200, response.text
    assert response.mimetype == media and labels_of(response) == BOTH


def test_lines_are_answered_one_per_record_in_order(client: FlaskClient, small_ensemble: Predictor) -> None:
    reviews = [POSITIVE, NEGATIVE] * 20 + ["It was fine, I suppose."]
    body = "".join(json.dumps(review) + "\n" for review in reviews)
    response = post(client, body, "application/jsonlines")
    answers = [json.loads(line) for line in response.text.splitlines()]
    expected = small_ensemble.predict(reviews)
    assert [a["label"] for a in answers] == [p.label for p in expected]
    assert [a["score"] for a in answers] == pytest.approx([p.score for p in expected])


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "error"),
    [
        (POSITIVE, "application/xml", None, 415, "unsupported_media_type"),
        (POSITIVE, "text/plain; charset=latin-1", None, 415, "unsupported_media_type"),
        (POSITIVE, "text/plain", "image/png", 406, "not_acceptable"),
        ("", "text/plain", None, 400, "bad_request"),
        ("  ", "text/plain", None, 400, "bad_request"),
        ('{"text": ', "application/json", None, 400, "bad_request"),
        (b"caf\xe9", "text/plain", None, 400, "bad_request"),
        ('"a,b",c\n', "text/csv", None, 400, "bad_request"),
        ("x" * (MAX_PAYLOAD_MB * 1024 * 1024 + 1), "text/plain", None, 413, "payload_too_large"),
    ],
)
def test_bad_requests_get_a_json_error_and_the_server_goes_on(
    client: FlaskClient, body: str | bytes, content_type: str, accept: str | None, status: int, error: str
) -> None:
    response = post(client, body, content_type, accept)
    assert response.status_code == status and response.mimetype == "application/json"
    assert response.json["error"] == error and response.json["message"]
    assert post(client, POSITIVE, "text/plain").status_code == 200


def test_unknown_routes_and_methods_answer_in_json(client: FlaskClient) -> None:
    assert client.get("/nowhere").status_code == 404 and client.get("/nowhere").json["error"] == "not_found"
    response = client.get("/invocations")
    assert response.status_code == 405 and response.json["error"] == "method_not_allowed"


def test_a_model_failure_is_a_500_that_keeps_the_exception_in_the_log(
    small_ensemble: Predictor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = ready_app(small_ensemble).test_client()

    def broken(reviews: object) -> object:
        raise RuntimeError("could not create a primitive descriptor at /opt/venv/lib/secret.py")

    monkeypatch.setattr(small_ensemble, "probabilities_of_tokens", broken)
    response = post(client, POSITIVE, "text/plain")
    assert response.status_code == 500 and response.json["error"] == "internal_error"
    incident = response.json["message"].split("incident ")[1].split()[0]
    assert "primitive" not in response.text and "RuntimeError" not in response.text and "/opt" not in response.text
    assert any(incident in record.getMessage() and record.exc_info for record in caplog.records)


@pytest.mark.parametrize(
    ("query", "headers", "body", "content_type"),
    [
        ("?explain=true", {}, POSITIVE, "text/plain"),
        ("", {"X-Amzn-SageMaker-Custom-Attributes": "trace=1, explain=true"}, POSITIVE, "text/plain"),
        ("", {}, json.dumps({"text": POSITIVE, "explain": True}), "application/json"),
    ],
)
def test_explanations_come_when_asked(
    client: FlaskClient, small_ensemble: Predictor, query: str, headers: dict, body: str, content_type: str
) -> None:
    response = client.post(f"/invocations{query}", data=body, headers={"Content-Type": content_type, **headers})
    contributions = response.json["contributions"]
    assert [c["token"] for c in contributions] == small_ensemble.tokenize(POSITIVE)
    assert [POSITIVE[slice(*c["span"])].lower() for c in contributions] == small_ensemble.tokenize(POSITIVE)
    top = response.json["top_words"]
    assert 0 < len(top) <= 8 and top[0]["word"] in {"superb", "masterpiece", "loved", "moving"}
    assert [abs(w["contribution"]) for w in top] == sorted((abs(w["contribution"]) for w in top), reverse=True)
    assert max(contributions, key=lambda c: c["contribution"])["token"] in {"superb", "masterpiece", "loved", "moving"}
    assert "contributions" not in post(client, POSITIVE, "text/plain").json


def test_explanations_are_limited_per_request(client: FlaskClient) -> None:
    body = json.dumps({"instances": [POSITIVE] * (MAX_EXPLAINED_REVIEWS + 1), "explain": True})
    response = post(client, body, "application/json")
    assert response.status_code == 413 and response.json["error"] == "payload_too_large"
    assert f"the limit is {MAX_EXPLAINED_REVIEWS} explained reviews per request" in response.json["message"]


@pytest.mark.parametrize(
    ("body", "content_type", "query", "message"),
    [
        (json.dumps(["ab"] * 11), "application/json", "", "holds 11 reviews; the limit is 10 reviews per request"),
        ("ab\n" * 11, "text/csv", "", "holds 11 reviews; the limit is 10 reviews"),
        ("superb " * 101, "text/plain", "", "holds 101 words (tokens); the limit is 100 words per request"),
        ("superb " * 51, "text/plain", "?explain=true", "holds 51 words (tokens); the limit is 50 words to explain"),
    ],
)
def test_work_beyond_the_limits_is_a_413_that_states_them(
    small_ensemble: Predictor, body: str, content_type: str, query: str, message: str
) -> None:
    client = ready_app(small_ensemble, max_records=10, max_tokens=100, max_explained_tokens=50).test_client()
    response = client.post(f"/invocations{query}", data=body, headers={"Content-Type": content_type})
    assert response.status_code == 413 and message in response.json["message"]
    within = client.post(f"/invocations{query}", data="superb " * 50, headers={"Content-Type": "text/plain"})
    assert within.status_code == 200


def test_execution_parameters_for_batch_transform(client: FlaskClient) -> None:
    assert client.get("/execution-parameters").json == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


def test_metrics_count_requests_batches_labels_and_the_model(client: FlaskClient, small_ensemble: Predictor) -> None:
    client.get("/ping")
    post(client, json.dumps([POSITIVE, NEGATIVE, POSITIVE]), "application/json")
    post(client, "", "text/plain")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.text
    assert 'sentiment_requests_total{route="/invocations",status="200"} 1.0' in text
    assert 'sentiment_requests_total{route="/invocations",status="400"} 1.0' in text
    assert 'sentiment_request_duration_seconds_count{route="/invocations",status="200"} 1.0' in text
    assert 'sentiment_predictions_total{label="positive"} 2.0' in text
    assert 'sentiment_predictions_total{label="negative"} 1.0' in text
    assert "sentiment_batch_size_count 1.0" in text
    assert f'sentiment_model_info{{family="ensemble",version="{small_ensemble.version}"}} 1.0' in text


def test_logs_hold_no_review_text_unless_asked(small_ensemble: Predictor, caplog: pytest.LogCaptureFixture) -> None:
    secret = "zanzibarquux"
    with caplog.at_level(logging.INFO, logger="sentiment.serving"):
        post(ready_app(small_ensemble).test_client(), f"{POSITIVE} {secret}", "text/plain")
    lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == "sentiment.serving"]
    assert any(line["route"] == "/invocations" and line["status"] == 200 and line["reviews"] == 1 for line in lines)
    assert secret not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sentiment.serving"):
        post(ready_app(small_ensemble, log_reviews=True).test_client(), f"{POSITIVE} {secret}", "text/plain")
    assert secret in caplog.text


def test_the_runtime_api_path_answers_like_invocations(client: FlaskClient) -> None:
    direct = post(client, POSITIVE, "text/plain")
    relayed = client.post(
        "/endpoints/sentiment-endpoint/invocations", data=POSITIVE, headers={"Content-Type": "text/plain"}
    )
    assert relayed.status_code == 200 and relayed.json == direct.json
