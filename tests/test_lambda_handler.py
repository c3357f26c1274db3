"""lambda/handler.py against the real `serve` (boto3 pointed at it) and tiny stand-in endpoints for the failures."""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import free_port
from tests.test_cli_serve import Server, start, stop

HANDLER_PATH = Path(__file__).resolve().parent.parent / "lambda" / "handler.py"
ORIGIN = "https://reviews.example.com"
POSITIVE = "A wonderful, moving film with superb acting. I loved every minute of it and would watch it again."
NEGATIVE = "An awful, boring mess. Terrible acting, a dull plot; I wanted my money back. The worst film of the year."


def load_handler() -> ModuleType:
    # `lambda` is a keyword, so the folder cannot be imported as a package: load the file itself.
    spec = importlib.util.spec_from_file_location("lambda_handler", HANDLER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


relay = load_handler()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """The real serving app with the bundled model, one worker."""
    server = start({"USE_BUNDLED_MODEL": "1", "MODEL_SERVER_WORKERS": "1"})
    yield server
    status, output = stop(server)
    assert status == 0, output


class StandIn(BaseHTTPRequestHandler):
    """Speaks the runtime API's path; the endpoint name in it picks the (mis)behaviour."""

    release: threading.Event

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        endpoint = self.path.split("/")[2]
        if endpoint == "hang":
            self.release.wait(10)
            return
        answers: dict[str, tuple[int, dict[str, str], bytes]] = {
            "garbage": (200, {}, b"<html>oops</html>"),
            "wrong-shape": (200, {}, json.dumps({"label": "maybe", "score": 2}).encode()),
            "model-error-400": (
                424,
                {"x-amzn-ErrorType": "ModelError"},
                json.dumps(
                    {
                        "Message": "Received client error (400) from primary with message ...",
                        "OriginalStatusCode": 400,
                        "OriginalMessage": json.dumps({"error": "bad_request", "message": "the review is empty"}),
                    }
                ).encode(),
            ),
            "model-error-500": (
                424,
                {"x-amzn-ErrorType": "ModelError"},
                json.dumps({"Message": "boom", "OriginalStatusCode": 500, "OriginalMessage": "Traceback"}).encode(),
            ),
            "missing": (
                400,
                {"x-amzn-ErrorType": "ValidationError"},
                json.dumps({"Message": "Endpoint missing of account 123456789012 not found."}).encode(),
            ),
            "busy": (
                429,
                {"x-amzn-ErrorType": "ModelNotReadyException"},
                json.dumps({"Message": "Model is not ready"}).encode(),
            ),
        }
        status, headers, body = answers[endpoint]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def stand_in() -> Iterator[str]:
    """A tiny HTTP server that answers garbage, modelled SageMaker errors, or never answers."""
    release = threading.Event()
    handler = type("BoundStandIn", (StandIn,), {"release": release})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def configure(aws_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Point the relay at `url` (endpoint `name`); the cached client is dropped before and after."""
    monkeypatch.delenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", raising=False)
    monkeypatch.delenv("MAX_REVIEW_BYTES", raising=False)
    monkeypatch.setenv("ALLOWED_ORIGIN", ORIGIN)

    def point(url: str, name: str = "sentiment", **environment: str) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", url)
        monkeypatch.setenv("ENDPOINT_NAME", name)
        for variable, value in environment.items():
            monkeypatch.setenv(variable, value)
        relay.sagemaker_runtime.cache_clear()

    yield point
    relay.sagemaker_runtime.cache_clear()


@pytest.fixture
def live(configure: Callable[..., None], server: Server) -> None:
    configure(server.url)


def event(
    body: str | bytes | None,
    content_type: str | None = "application/json",
    method: str = "POST",
    version: str = "1.0",
    base64_body: bool = False,
) -> dict[str, Any]:
    """An API Gateway proxy event: REST API (payload 1.0) or HTTP API (payload 2.0)."""
    headers = {"origin": ORIGIN}
    if content_type is not None:
        headers["Content-Type" if version == "1.0" else "content-type"] = content_type
    if base64_body:
        raw = body.encode() if isinstance(body, str) else body or b""
        body = base64.b64encode(raw).decode()
    if version == "1.0":
        return {"httpMethod": method, "headers": headers, "body": body, "isBase64Encoded": base64_body}
    return {
        "version": "2.0",
        "requestContext": {"http": {"method": method, "path": "/predict"}},
        "headers": headers,
        "body": body,
        "isBase64Encoded": base64_body,
    }


def call(evt: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    response = relay.handler(evt, None)
    headers = response["headers"]
    assert headers["Access-Control-Allow-Origin"] == ORIGIN and headers["Vary"] == "Origin"
    assert headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert headers["Access-Control-Allow-Headers"] == "Content-Type"
    body = json.loads(response["body"]) if response["body"] else None
    return response["statusCode"], headers, body


def assert_verdict(status: int, body: Any, label: str, review: str | None = None) -> None:
    assert status == 200, body
    assert set(body) == {"label", "probability", "top_words", "contributions"} and body["label"] == label
    assert 0.0 <= body["probability"] <= 1.0
    assert (body["probability"] > 0.5) == (label == "positive")
    words = [item["word"] for item in body["top_words"]]
    strengths = [abs(item["contribution"]) for item in body["top_words"]]
    assert 0 < len(words) <= 8 and len(set(words)) == len(words) and strengths == sorted(strengths, reverse=True)
    if review is not None:  # each token's span is where it stands in the review as sent
        for item in body["contributions"]:
            start, end = item["span"]
            assert review[start:end].lower() == item["token"]


def assert_error(status: int, body: Any, expected: int) -> str:
    assert status == expected, body
    assert set(body) == {"error", "message"} and body["message"], body
    return body["message"]


# --- verdicts from the real server ---


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_json_reviews_get_their_verdicts(live: None, version: str) -> None:
    status, headers, body = call(event(json.dumps({"review": POSITIVE}), version=version))
    assert_verdict(status, body, "positive", review=POSITIVE)
    assert headers["Content-Type"] == "application/json"
    status, _, body = call(event(json.dumps({"review": NEGATIVE}), version=version))
    assert_verdict(status, body, "negative")
    assert {"awful", "terrible", "worst"} & {item["word"] for item in body["top_words"]}


@pytest.mark.parametrize("version", ["1.0", "2.0"])
@pytest.mark.parametrize("base64_body", [False, True])
def test_plain_text_and_base64_bodies(live: None, version: str, base64_body: bool) -> None:
    evt = event(POSITIVE, "text/plain; charset=utf-8", version=version, base64_body=base64_body)
    assert_verdict(*call(evt)[::2], "positive")
    evt = event(json.dumps({"review": NEGATIVE}).encode(), version=version, base64_body=base64_body)
    assert_verdict(*call(evt)[::2], "negative")


def test_headers_are_case_insensitive_and_unicode_is_fine(live: None) -> None:
    evt = event(json.dumps({"review": "Ein großartiger Film — superb, I loved it 😀"}, ensure_ascii=False))
    evt["headers"] = {"CONTENT-TYPE": "Application/JSON"}
    assert call(evt)[0] == 200


def test_a_script_review_comes_back_as_data(live: None) -> None:
    review = '<script>alert("x")</script> A superb film & a great cast <b>loved</b> it'
    response = relay.handler(event(json.dumps({"review": review})), None)
    assert response["statusCode"] == 200 and response["headers"]["Content-Type"] == "application/json"
    assert not {"<", ">", "&"} & set(response["body"])
    assert json.loads(response["body"])["label"] == "positive"
    response = relay.handler(event("x", "text/<script>"), None)
    assert response["statusCode"] == 415 and "<" not in response["body"]
    assert "text/<script>" in json.loads(response["body"])["message"]


def test_the_servers_verdict_is_passed_on_as_it_is() -> None:
    contributions = [
        {"token": "bad", "contribution": -0.7, "span": [0, 3]},
        {"token": "film", "contribution": 0.1, "span": [4, 8]},
    ]
    top_words = [{"word": "bad", "contribution": -0.7}, {"word": "film", "contribution": 0.1}]
    answer = {"label": "negative", "score": 0.2, "contributions": contributions, "top_words": top_words}
    verdict = relay.to_verdict(json.dumps(answer).encode())
    assert verdict == {"label": "negative", "probability": 0.2, "top_words": top_words, "contributions": contributions}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"contributions": [{"token": "bad", "contribution": -0.7}]}, "{token, contribution, span}"),
        ({"contributions": [{"token": "bad", "contribution": -0.7, "span": [3, 1]}]}, "span"),
        ({"contributions": [{"token": "bad", "contribution": "-0.7", "span": [0, 3]}]}, "span"),
        ({"top_words": None}, "top words"),
        ({"top_words": [{"word": f"w{n}", "contribution": 0.1} for n in range(9)]}, "top words"),
        ({"top_words": [{"word": 5, "contribution": 0.1}]}, "top words"),
        ({"label": "maybe"}, "not a verdict"),
    ],
)
def test_an_answer_that_is_not_the_servers_verdict_is_a_502(change: dict[str, Any], words: str) -> None:
    answer = {"label": "negative", "score": 0.2, "contributions": [], "top_words": [], **change}
    with pytest.raises(relay.BadGateway, match=re.escape(words)):
        relay.to_verdict(json.dumps(answer).encode())


# --- CORS and the request's own errors, all answered before the endpoint is called ---


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_preflight(live: None, version: str) -> None:
    evt = event(None, None, method="OPTIONS", version=version)
    status, headers, body = call(evt)
    assert status == 204 and body is None and headers["Access-Control-Max-Age"]


@pytest.mark.parametrize(
    ("evt", "status", "words"),
    [
        (event(json.dumps({"review": ""})), 400, "empty"),
        (event(json.dumps({"review": " \n\t "})), 400, "empty"),
        (event("", "text/plain"), 400, "empty"),
        (event(None, "text/plain", version="2.0"), 400, "empty"),
        (event('{"review": "good'), 400, "not valid JSON"),
        (event(json.dumps({"text": "good"})), 400, '"review"'),
        (event(json.dumps(["good"])), 400, '"review"'),
        (event(json.dumps({"review": 5})), 400, "must be a string"),
        (event(json.dumps({"review": ["good"]})), 400, "must be a string"),
        (event(b"good \xff\xfe film", "text/plain", base64_body=True), 400, "UTF-8"),
        (event(b'{"review": "\xc3\x28"}', base64_body=True), 400, "UTF-8"),
        (event("not base64!", "text/plain", base64_body=False) | {"isBase64Encoded": True}, 400, "base64"),
        (event("x" * 20_001, "text/plain"), 413, "20,000"),
        (event(json.dumps({"review": "é" * 10_001}), version="2.0"), 413, "20,002 bytes"),
        (event("good", "application/xml"), 415, "application/xml"),
        (event(None), 400, "empty"),  # a null body is an empty review, not malformed JSON
        (event("good", "text/html"), 415, "text/html"),
        (event(None, None, method="GET"), 405, "GET"),
        ({"headers": None, "body": None}, 400, "names no HTTP method"),
        (event("good", "text/plain") | {"headers": "Content-Type: text/plain"}, 400, "headers is not an object"),
        (event("good", "text/plain", version="2.0") | {"requestContext": "POST"}, 400, "requestContext is not an"),
        (event("good", "text/plain", version="2.0") | {"requestContext": {"http": 7}}, 400, "names no HTTP method"),
        (event("good", "text/plain", method="PUT", version="2.0"), 405, "PUT"),
    ],
)
def test_bad_requests_are_clear_errors(live: None, evt: dict[str, Any], status: int, words: str) -> None:
    answer, headers, body = call(evt)
    assert words in assert_error(answer, body, status)
    if status == 405:
        assert headers["Allow"] == "POST, OPTIONS"


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_an_event_without_content_type_is_read_as_json(live: None, version: str) -> None:
    # API Gateway's console test events carry no headers at all.
    evt = event(json.dumps({"review": POSITIVE}), None, version=version)
    assert "content-type" not in {name.lower() for name in evt["headers"]}
    assert_verdict(*call(evt)[::2], "positive")


def test_an_event_that_is_not_an_object_is_a_400(live: None) -> None:
    response = relay.handler(["POST", "good"], None)
    assert response["statusCode"] == 400 and "not an API Gateway proxy event" in json.loads(response["body"])["message"]


def test_the_size_limit_comes_from_the_environment(live: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_REVIEW_BYTES", "40")
    assert call(event("a superb film, I loved it, really great", "text/plain"))[0] == 200  # 39 bytes
    assert call(event("a superb film, I loved it, truly great!!", "text/plain"))[0] == 200  # 40 bytes
    assert_error(*call(event("a superb film, I loved it, truly great!!!", "text/plain"))[::2], 413)
    monkeypatch.setenv("MAX_REVIEW_BYTES", "lots")
    assert "MAX_REVIEW_BYTES" in assert_error(*call(event("good", "text/plain"))[::2], 500)


def test_a_missing_endpoint_name_is_a_configuration_error(live: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENDPOINT_NAME")
    assert "ENDPOINT_NAME" in assert_error(*call(event(json.dumps({"review": POSITIVE})))[::2], 500)


def test_without_allowed_origin_no_origin_is_allowed(live: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALLOWED_ORIGIN")
    response = relay.handler(event(json.dumps({"review": POSITIVE})), None)
    assert response["statusCode"] == 200 and "Access-Control-Allow-Origin" not in response["headers"]


# --- the endpoint's failures: errors with their status, never a verdict ---


def test_an_endpoint_nobody_listens_on(configure: Callable[..., None]) -> None:
    configure(f"http://127.0.0.1:{free_port()}")
    message = assert_error(*call(event(json.dumps({"review": POSITIVE})))[::2], 502)
    assert message == "the model endpoint cannot be reached"


def test_an_endpoint_that_never_answers(configure: Callable[..., None], stand_in: str) -> None:
    configure(stand_in, "hang", READ_TIMEOUT_SECONDS="0.3")
    assert "in time" in assert_error(*call(event(json.dumps({"review": POSITIVE})))[::2], 504)


@pytest.mark.parametrize(
    ("endpoint", "status", "words"),
    [
        ("garbage", 502, "not JSON"),
        ("wrong-shape", 502, "not a verdict"),
        ("model-error-400", 400, "the review is empty"),
        ("model-error-500", 502, "Traceback"),
        ("missing", 502, "'missing' does not exist"),
        ("busy", 503, "not ready"),
    ],
)
def test_endpoint_failures_become_clear_errors(
    configure: Callable[..., None], stand_in: str, endpoint: str, status: int, words: str
) -> None:
    configure(stand_in, endpoint)
    assert words in assert_error(*call(event(json.dumps({"review": POSITIVE})))[::2], status)


@pytest.mark.parametrize(
    ("error", "metadata", "status"),
    [
        ({"Code": "400", "Message": "the review is empty"}, {}, 400),
        ({"Code": "415", "Message": "Content-Type is not supported"}, {}, 502),
        ({"Code": "406", "Message": "Accept is not supported"}, {}, 502),
        ({"Code": "ModelError", "Message": "x", "OriginalStatusCode": "413", "OriginalMessage": "too big"}, {}, 413),
        ({"Code": "ModelError", "Message": "x", "OriginalStatusCode": 503, "OriginalMessage": "loading"}, {}, 503),
        ({"Code": "ModelError", "Message": "x"}, {}, 502),
        ({"Code": "ValidationError", "Message": "1 validation error detected: EndpointName"}, {}, 502),
        ({"Code": "InternalFailure", "Message": "oops"}, {"HTTPStatusCode": 500}, 502),
        ({"Code": "ServiceUnavailable", "Message": "later"}, {"HTTPStatusCode": 503}, 503),
    ],
)
def test_endpoint_error_codes_map_to_statuses(error: dict[str, Any], metadata: dict[str, Any], status: int) -> None:
    code = error["Code"]
    http_status = metadata.get("HTTPStatusCode", int(code) if code.isdigit() else 400)
    failure = relay.endpoint_failure(
        ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": http_status}}, "InvokeEndpoint"), "ep"
    )
    assert failure.status == status and str(failure)


def test_the_real_servers_own_refusals_pass_through(live: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # With the relay's limit lifted above the server's 6 MB, the server's own 413 comes back as a 413.
    monkeypatch.setenv("MAX_REVIEW_BYTES", str(7 * 1024 * 1024))
    message = assert_error(*call(event("superb " * 1_000_000, "text/plain"))[::2], 413)
    assert message.startswith("the model refused the review")


@pytest.mark.parametrize("review", ["<br /><br />", "...", "🌟 ✨ 🌟"])
def test_a_review_without_a_word_the_model_knows_is_unknown(live: None, review: str) -> None:
    status, _, body = call(event(json.dumps({"review": review})))
    assert status == 200 and body["label"] == "unknown" and body["probability"] == 0.5 and body["top_words"] == []
    assert all(item["contribution"] == 0.0 for item in body["contributions"])


def test_emoji_are_judged_as_emoticons(live: None) -> None:
    assert_verdict(*call(event(json.dumps({"review": "🙂🙂"})))[::2], "positive")
    assert_verdict(*call(event(json.dumps({"review": "😡😡"})))[::2], "negative")


def test_one_json_log_line_per_request_without_the_review(live: None, caplog: pytest.LogCaptureFixture) -> None:
    secret = "Zanzibar-unique-phrase superb"
    with caplog.at_level(logging.INFO, logger="sentiment_relay"):
        relay.handler(event(json.dumps({"review": secret})), type("Context", (), {"aws_request_id": "r-1"})())
        relay.handler(event(json.dumps({"review": 7})), None)
    records = [json.loads(record.getMessage()) for record in caplog.records if record.name == "sentiment_relay"]
    assert [(r["status"], r["request_id"]) for r in records] == [(200, "r-1"), (400, None)]
    assert all(r["latency_ms"] >= 0 for r in records) and records[1]["error"] == "bad_request"
    assert "Zanzibar" not in caplog.text
