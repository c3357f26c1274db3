"""Serving failures, one type per HTTP status, each answered as `{"error": ..., "message": ...}`."""

from __future__ import annotations

from sentiment.errors import SentimentError


class ServingError(SentimentError):
    """A request the server refuses; `status` is its HTTP status code."""

    status = 500
    error = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, str]:
        return {"error": self.error, "message": self.message}


class BadRequest(ServingError):
    status = 400
    error = "bad_request"


class NotAcceptable(ServingError):
    status = 406
    error = "not_acceptable"


class PayloadTooLarge(ServingError):
    status = 413
    error = "payload_too_large"


class UnsupportedMediaType(ServingError):
    status = 415
    error = "unsupported_media_type"


class ModelNotReady(ServingError):
    status = 503
    error = "model_not_ready"
