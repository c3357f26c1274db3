"""The Flask app of SageMaker's inference contract.

    GET  /ping                  200 once the model is loaded, else 503
    POST /invocations           reviews in (see codecs.py), verdicts out
    POST /endpoints/<name>/invocations
                                the same, at the path of sagemaker-runtime's InvokeEndpoint, so the
                                Lambda relay's boto3 client can call a local server (endpoint URL override)
    GET  /execution-parameters  what Batch Transform should send (multi-record, 6 MB)
    GET  /metrics               Prometheus text format

A request takes SageMaker's four steps, each in its own place: `model_fn` (loading.py, through the
worker's ModelHolder), `input_fn` and `output_fn` (codecs.py; Accept negotiated once, by
`answer_type`), `predict_fn` (predict.py). Explanations (per-token contributions with their spans,
and the deciding words) are asked for with `?explain=true`, `"explain": true` in a JSON object body,
or `explain=true` in SageMaker's CustomAttributes header. Every error is a JSON
body `{"error": ..., "message": ...}` with its status, mapped in `_answer_error` alone; no review
text reaches the logs unless SENTIMENT_LOG_REVIEWS=1.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from sentiment.contract import ServingSettings
from sentiment.predictor import LABELS, UNKNOWN, Predictor
from sentiment.serving.batching import MicroBatcher
from sentiment.serving.codecs import answer_type, input_fn, output_fn
from sentiment.serving.cores import all_cores
from sentiment.serving.errors import BadRequest, PayloadTooLarge, ServingError
from sentiment.serving.loading import ModelHolder, model_fn, model_source
from sentiment.serving.memory import release_freed_memory
from sentiment.serving.metrics import Metrics
from sentiment.serving.predict import WorkLimits, check_reviews, predict_fn
from sentiment.settings import parse_flag

log = logging.getLogger("sentiment.serving")

DRAINED_BODY_FACTOR = 4  # a body over the limit, up to this many times it, is read before the 413
LARGE_BODY_BYTES = 512 * 1024  # bodies over this are handled one at a time per worker (memory)
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"

routes = Blueprint("sentiment", __name__)


class Server:
    """What the routes share: settings, the model holder, the batcher and the metrics."""

    def __init__(self, settings: ServingSettings, load: Callable[[], Predictor]) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.model = ModelHolder(load)
        self.batcher = MicroBatcher(
            self._score, settings.max_batch, settings.max_wait_ms / 1000, self.metrics.batch_size.observe
        )
        self.large_requests = threading.Lock()

    def _score(self, token_lists: list[list[str]]) -> Any:
        return self.model.get().probabilities_of_tokens(token_lists)


def create_app(settings: ServingSettings, load: Callable[[], Predictor] | None = None) -> Flask:
    """The app; `load` returns the model (default: from the settings' model source, checked now)."""
    if load is None:
        source = model_source(settings)

        def load() -> Predictor:
            return model_fn(source, settings.precision)

    app = Flask(__name__)
    app.extensions["sentiment"] = Server(settings, load)
    app.register_blueprint(routes)
    app.register_error_handler(Exception, _answer_error)
    app.before_request(_start_timer)
    app.after_request(_record)
    return app


def _server() -> Server:
    return current_app.extensions["sentiment"]


@routes.get("/ping")
def ping() -> Response:
    server = _server()
    predictor = server.model.get()  # ModelNotReady -> 503
    server.metrics.model.labels(version=predictor.version, family=predictor.family).set(1)
    return _json({"status": "ready", "model": predictor.version, "family": predictor.family})


@routes.post("/invocations")
@routes.post("/endpoints/<endpoint>/invocations")
def invocations(endpoint: str | None = None) -> Response:
    """SageMaker's route, and the runtime API's (InvokeEndpoint) so a boto3 client can talk to a local server."""
    with _server().batcher.expecting():
        return _invoke(_server())


def _invoke(server: Server) -> Response:
    settings = server.settings
    body = _body(settings.max_payload_bytes)
    # Large bodies are decoded and scored one at a time per worker: each holds its text, tokens and answer
    # (several times the body) in memory until answered, and 16 at once would need gigabytes.
    large = len(body) > LARGE_BODY_BYTES
    with server.large_requests if large else nullcontext(), _releasing_memory(large):
        decoded = input_fn(body, request.headers.get("Content-Type"), settings.plain_text_lines)
        del body
        g.reviews = len(decoded.reviews)
        media_type = answer_type(decoded, request.headers.get("Accept"), settings.batch_transform)  # 406 first
        explain = decoded.explain or _explain_asked()
        limits = WorkLimits.of(settings)
        check_reviews(decoded, explain, limits)  # before waiting for a model: a 413 needs none
        # /ping says whether this worker is ready; a request that reaches a worker still loading waits for it.
        predictor = server.model.get(wait=settings.timeout)
        with all_cores() if large else nullcontext():
            results = predict_fn(
                decoded,
                predictor,
                lambda tokens: server.batcher.submit(tokens, timeout=settings.timeout),
                explain,
                limits,
            )
        for label in (*LABELS, UNKNOWN):
            server.metrics.predictions.labels(label=label).inc(sum(result.label == label for result in results))
        if settings.log_reviews:
            log.info(json.dumps({"event": "reviews", "reviews": decoded.reviews, "scores": [r.score for r in results]}))
        return Response(output_fn(results, decoded, media_type), status=200, mimetype=media_type)


@contextmanager
def _releasing_memory(large: bool) -> Iterator[None]:
    """After a large request, what it held goes back to the system rather than staying with the worker."""
    try:
        yield
    finally:
        if large:
            release_freed_memory()


@routes.get("/execution-parameters")
def execution_parameters() -> Response:
    settings = _server().settings
    return _json(
        {
            "MaxConcurrentTransforms": settings.workers,
            "BatchStrategy": settings.batch_strategy,
            "MaxPayloadInMB": settings.max_payload_bytes // (1024 * 1024),
        }
    )


@routes.get("/metrics")
def metrics() -> Response:
    body, content_type = _server().metrics.exposition()
    return Response(body, status=200, content_type=content_type)


def _body(limit: int) -> bytes:
    """The request body, refused before reading when it declares more than `limit` bytes."""
    declared = request.content_length
    if declared is not None and declared > limit:
        if declared <= DRAINED_BODY_FACTOR * limit:
            # Read and drop it: clients that send the whole body before reading then see the 413,
            # not a connection reset.
            while request.stream.read(64 * 1024):
                pass
        raise PayloadTooLarge(f"the body is {declared:,} bytes; the limit is {limit:,} ({limit // 2**20} MB)")
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"the body is over the {limit:,}-byte ({limit // 2**20} MB) limit")
    if declared is not None and len(body) < declared:
        # The client closed its side early: what arrived is part of a request, not a request to score.
        raise BadRequest(f"the body ended after {len(body):,} of the {declared:,} bytes its Content-Length declares")
    return body


def _explain_asked() -> bool:
    if parse_flag(request.args.get("explain", "")):
        return True
    attributes = request.headers.get(CUSTOM_ATTRIBUTES, "")
    pairs = (part.partition("=") for part in attributes.split(","))
    return any(name.strip() == "explain" and parse_flag(value) for name, _, value in pairs)


def _answer_error(error: Exception) -> Response:
    """Every failure as a JSON body with its status code: the one place statuses are chosen."""
    if isinstance(error, ServingError):
        status, document = error.status, error.to_json()
    elif isinstance(error, HTTPException):
        status = error.code or 500
        name = (error.name or "error").lower().replace(" ", "_")
        document = {"error": name, "message": error.description or name}
    elif isinstance(error, TimeoutError):
        status, document = 503, {"error": "timeout", "message": "the model did not answer in time; retry"}
    else:
        # The exception's text stays in the log: it may hold internals (paths, library messages) a client must not see.
        incident = uuid.uuid4().hex[:12]
        log.exception("unexpected error %s on %s %s", incident, request.method, request.path)
        message = f"the server failed on this request (incident {incident} in its log); retry or report it"
        status, document = 500, {"error": "internal_error", "message": message}
    return _json(document, status)


def _json(document: Any, status: int = 200) -> Response:
    return Response(json.dumps(document, ensure_ascii=False), status=status, mimetype="application/json")


def _start_timer() -> None:
    g.started = time.perf_counter()


def _record(response: Response) -> Response:
    """Metrics and one structured log line per request (never its text)."""
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
    status = str(response.status_code)
    server = _server()
    server.metrics.requests.labels(route=route, status=status).inc()
    server.metrics.latency.labels(route=route, status=status).observe(seconds)
    if route != "/ping" or response.status_code != 200:
        entry = {
            "event": "request",
            "method": request.method,
            "route": route,
            "status": response.status_code,
            "ms": round(seconds * 1000, 2),
            "reviews": g.get("reviews", 0),
            "content_type": request.headers.get("Content-Type"),
            "accept": request.headers.get("Accept"),
            "bytes_in": request.content_length,
        }
        log.info(json.dumps(entry))
    return response
