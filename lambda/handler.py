"""The Lambda relay: an API Gateway proxy event (payload 1.0 or 2.0) in, one SageMaker InvokeEndpoint call out.
Standard library and boto3 only; it is deployed alone, without the `sentiment` package.

| variable | meaning | default |
| --- | --- | --- |
| `ENDPOINT_NAME` | the SageMaker endpoint to invoke | required (500 without it) |
| `ALLOWED_ORIGIN` | the page's origin, sent as `Access-Control-Allow-Origin` | unset: no cross-origin access |
| `MAX_REVIEW_BYTES` | the longest review accepted, in bytes of UTF-8 | 20000 |
| `READ_TIMEOUT_SECONDS` | how long one call waits for the endpoint's answer | 12 (two tries fit API Gateway's 29 s) |
| `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` | boto3's own endpoint URL override, for local runs and tests | AWS's |

The page sends `{"review": "..."}` (application/json) or the review itself (text/plain) and gets
`{"label", "probability", "top_words": [{"word", "contribution"}, ...], "contributions": [{"token",
"contribution", "span"}, ...]}`: the model server's own verdict and explanation, checked and passed on
(label "unknown", probability 0.5 and no top words for a review with no word the model knows); every failure is a JSON
`{"error", "message"}` with its status, never a verdict.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import os
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

DEFAULT_MAX_REVIEW_BYTES = 20_000  # far more than a review typed on the page; the endpoint takes up to 6 MB
DEFAULT_READ_TIMEOUT_SECONDS = 12.0  # scoring takes milliseconds; two tries must fit API Gateway's 29 s
TOP_WORDS = 8  # the most deciding words the model server names
LABELS = ("positive", "negative", "unknown")  # unknown: no word the model knows (probability 0.5, no top words)

logger = logging.getLogger("sentiment_relay")
logger.setLevel(logging.INFO)


class RelayError(Exception):
    """A request the relay answers with an error; `status` and `error` go into the response as they are."""

    status = 500
    error = "internal_error"


class BadRequest(RelayError):
    status = 400
    error = "bad_request"


class MethodNotAllowed(RelayError):
    status = 405
    error = "method_not_allowed"


class PayloadTooLarge(RelayError):
    status = 413
    error = "payload_too_large"


class UnsupportedMediaType(RelayError):
    status = 415
    error = "unsupported_media_type"


class ConfigurationError(RelayError):
    status = 500
    error = "configuration_error"


class BadGateway(RelayError):
    status = 502
    error = "bad_gateway"


class ModelNotReady(RelayError):
    status = 503
    error = "model_not_ready"


class GatewayTimeout(RelayError):
    status = 504
    error = "gateway_timeout"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda's entry point: answer one API Gateway proxy event, logging one JSON line without the review."""
    started = time.monotonic()
    method = _method(event)
    try:
        response = _answer(event, method)
        error = None
    except RelayError as failure:
        response = _response(failure.status, {"error": failure.error, "message": str(failure)})
        error = failure.error
    if response["statusCode"] == 405:
        response["headers"]["Allow"] = "POST, OPTIONS"
    record = {
        "request_id": getattr(context, "aws_request_id", None),
        "method": method,
        "status": response["statusCode"],
        "error": error,
        "latency_ms": round((time.monotonic() - started) * 1000, 1),
    }
    logger.info(json.dumps(record))
    return response


def _answer(event: dict[str, Any], method: str) -> dict[str, Any]:
    """The successful response to `event`, or a RelayError saying why there is none."""
    _check_event(event)
    if method == "OPTIONS":
        return _response(204, None)
    if method != "POST":
        raise MethodNotAllowed(f"{method} is not supported: POST a review (OPTIONS for CORS preflight)")
    review = read_review(event, max_review_bytes())
    endpoint = os.environ.get("ENDPOINT_NAME", "").strip()
    if not endpoint:
        raise ConfigurationError("the relay is not configured: set the environment variable ENDPOINT_NAME")
    verdict = invoke(endpoint, review)
    return _response(200, verdict)


def _check_event(event: Any) -> None:
    """A BadRequest unless `event` has the shape of an API Gateway proxy event (payload 1.0 or 2.0)."""
    if not isinstance(event, dict):
        raise BadRequest(f"the event is not an API Gateway proxy event (a JSON object), but {type(event).__name__}")
    for part in ("requestContext", "headers"):
        if event.get(part) is not None and not isinstance(event[part], dict):
            raise BadRequest(f"the event's {part} is not an object, but {type(event[part]).__name__}")
    if _method(event) == "(none)":
        raise BadRequest("the event names no HTTP method (httpMethod or requestContext.http.method)")


def _method(event: Any) -> str:
    """The HTTP method of a payload 1.0 (`httpMethod`) or 2.0 (`requestContext.http.method`) event."""
    method = _field(event, "httpMethod") or _field(_field(_field(event, "requestContext"), "http"), "method")
    return str(method).upper() if isinstance(method, str) and method else "(none)"


def _field(document: Any, name: str) -> Any:
    """document[name] when document is a JSON object, else None: an event's parts may be missing or malformed."""
    return document.get(name) if isinstance(document, dict) else None


def max_review_bytes() -> int:
    """MAX_REVIEW_BYTES as a positive integer; a malformed value is a configuration error, not a silent default."""
    raw = os.environ.get("MAX_REVIEW_BYTES", "").strip()
    if not raw:
        return DEFAULT_MAX_REVIEW_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigurationError(f"MAX_REVIEW_BYTES must be a positive integer, not {raw!r}")
    return value


def read_review(event: dict[str, Any], limit: int) -> str:
    """The review in the event's body (JSON `{"review": ...}` or text/plain), checked for size and content."""
    headers = {str(name).lower(): str(value) for name, value in (event.get("headers") or {}).items()}
    # No Content-Type (API Gateway's own test events have none): the page's format, JSON.
    media_type = headers.get("content-type", "").split(";")[0].strip().lower() or "application/json"
    if media_type not in ("application/json", "text/plain"):
        shown = media_type or "(none)"
        raise UnsupportedMediaType(
            f'Content-Type {shown} is not supported: send application/json {{"review": ...}} or text/plain'
        )
    body = _body_bytes(event)
    if not body.strip():  # no body, a null one, or only white space: nothing to score
        raise BadRequest("the review is empty: send the text of a movie review")
    # JSON may spell one character as a 6-byte \uXXXX escape; anything longer cannot hold an acceptable review.
    if len(body) > 6 * limit + 1024:
        raise PayloadTooLarge(f"the request body is {len(body):,} bytes; a review may be at most {limit:,} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadRequest(f"the body is not valid UTF-8 (byte {error.start})") from None
    review = _review_from_json(text) if media_type == "application/json" else text
    try:
        size = len(review.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadRequest("the review is not valid Unicode text") from None
    if size > limit:
        raise PayloadTooLarge(f"the review is {size:,} bytes of UTF-8; at most {limit:,} are accepted")
    if not review.strip():
        raise BadRequest("the review is empty: send the text of a movie review")
    return review


def _body_bytes(event: dict[str, Any]) -> bytes:
    """The raw body, base64-decoded when API Gateway says it is encoded."""
    body = event.get("body")
    if body is None:
        return b""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise BadRequest("the body is marked base64-encoded but is not valid base64") from None
    if isinstance(body, bytes):
        return body
    try:
        return str(body).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("the body is not valid Unicode text") from None


def _review_from_json(text: str) -> str:
    """The string under "review" in a JSON object."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadRequest(f"the body is not valid JSON: {error.msg} at column {error.colno}") from None
    if not isinstance(document, dict) or "review" not in document:
        raise BadRequest('send a JSON object {"review": "the text of a movie review"}')
    review = document["review"]
    if not isinstance(review, str):
        raise BadRequest(f'"review" must be a string, not {type(review).__name__}')
    return review


@functools.cache
def sagemaker_runtime() -> Any:
    """One SageMaker runtime client per container, made on first use (boto3 reads its endpoint URL override)."""
    raw = os.environ.get("READ_TIMEOUT_SECONDS", "").strip()
    try:
        read_timeout = float(raw) if raw else DEFAULT_READ_TIMEOUT_SECONDS
    except ValueError:
        raise ConfigurationError(f"READ_TIMEOUT_SECONDS must be a number of seconds, not {raw!r}") from None
    config = Config(connect_timeout=2, read_timeout=read_timeout, retries={"mode": "standard", "total_max_attempts": 2})
    return boto3.client("sagemaker-runtime", config=config)


def invoke(endpoint: str, review: str) -> dict[str, Any]:
    """The endpoint's verdict on `review` with its strongest words; every failure becomes a RelayError."""
    try:
        response = sagemaker_runtime().invoke_endpoint(
            EndpointName=endpoint,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps({"text": review, "explain": True}),
        )
        answer = response["Body"].read()
    except ReadTimeoutError:
        raise GatewayTimeout("the model endpoint did not answer in time; try again") from None
    except (BotocoreConnectionError, HTTPClientError):
        raise BadGateway("the model endpoint cannot be reached") from None
    except ClientError as error:
        raise endpoint_failure(error, endpoint) from None
    except BotoCoreError as error:
        raise ConfigurationError(f"the relay cannot call the model endpoint: {error}") from None
    return to_verdict(answer)


def endpoint_failure(error: ClientError, endpoint: str) -> RelayError:
    """The RelayError for an error the SageMaker runtime (or a local server speaking its API) answered."""
    response: dict[str, Any] = error.response
    code = str(response.get("Error", {}).get("Code", ""))
    message = str(response.get("Error", {}).get("Message", "")) or str(error)
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code == "ModelError":
        # SageMaker wraps the container's own error: its status and body come back as OriginalStatusCode/Message.
        original = response.get("OriginalStatusCode", response.get("Error", {}).get("OriginalStatusCode"))
        status = int(original) if str(original or "").isdigit() else 0
        message = _container_message(response.get("OriginalMessage", response.get("Error", {}).get("OriginalMessage")))
        message = message or "the model failed on this review"
    if code == "ValidationError" and "not found" in message.lower():
        return BadGateway(f"the model endpoint {endpoint!r} does not exist: check ENDPOINT_NAME")
    if code in ("ModelNotReadyException", "ThrottlingException", "ServiceUnavailable") or status in (429, 503):
        return ModelNotReady(f"the model endpoint is busy or not ready; try again shortly ({message})")
    if status == 400 and code != "ValidationError":
        return BadRequest(f"the model refused the review: {message}")
    if status == 413:
        return PayloadTooLarge(f"the model refused the review: {message}")
    return BadGateway(f"the model endpoint failed ({code or status}): {message}")


def _container_message(original: Any) -> str:
    """The `message` of our container's JSON error body, or the body itself when it is not one."""
    if original is None:
        return ""
    try:
        document = json.loads(str(original))
    except json.JSONDecodeError:
        return str(original)
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return document["message"]
    return str(original)


def to_verdict(answer: bytes) -> dict[str, Any]:
    """The page's verdict from the endpoint's explained answer, checked and passed on, nothing recomputed:
    `{"label", "probability", "top_words", "contributions"}`; anything else is a 502."""
    try:
        document = json.loads(answer)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadGateway("the model endpoint answered something that is not JSON") from None
    if not isinstance(document, dict):
        raise BadGateway("the model endpoint answered JSON that is not a verdict")
    label, score = document.get("label"), document.get("score")
    contributions, top_words = document.get("contributions"), document.get("top_words")
    if label not in LABELS or not _is_number(score) or not 0.0 <= score <= 1.0:
        raise BadGateway("the model endpoint answered JSON that is not a verdict")
    if not isinstance(contributions, list) or not all(map(_is_contribution, contributions)):
        raise BadGateway("the model endpoint answered contributions that are not {token, contribution, span}")
    if not isinstance(top_words, list) or len(top_words) > TOP_WORDS or not all(map(_is_top_word, top_words)):
        raise BadGateway("the model endpoint answered top words that are not {word, contribution}")
    return {"label": label, "probability": float(score), "top_words": top_words, "contributions": contributions}


def _is_contribution(item: Any) -> bool:
    """{"token": str, "contribution": number, "span": [start, end]} with 0 <= start <= end."""
    if not (isinstance(item, dict) and isinstance(item.get("token"), str) and _is_number(item.get("contribution"))):
        return False
    span = item.get("span")
    return (
        isinstance(span, list)
        and len(span) == 2
        and all(isinstance(bound, int) and not isinstance(bound, bool) for bound in span)
        and 0 <= span[0] <= span[1]
    )


def _is_top_word(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("word"), str) and _is_number(item.get("contribution"))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _response(status: int, document: dict[str, Any] | None) -> dict[str, Any]:
    """A proxy-integration response with the CORS headers every answer carries, errors included."""
    headers = {
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    origin = os.environ.get("ALLOWED_ORIGIN", "").strip()
    if origin:
        headers["Access-Control-Allow-Origin"] = origin
    if document is None:
        return {"statusCode": status, "headers": headers, "body": ""}
    headers["Content-Type"] = "application/json"
    # <, > and & as \u escapes: no byte of the body can be read as HTML, whatever a review or header held.
    body = json.dumps(document).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return {"statusCode": status, "headers": headers, "body": body, "isBase64Encoded": False}
