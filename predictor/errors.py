"""Typed errors of the predictor, each with the one status code it maps to.

Every module raises these; `predictor.server` maps them to HTTP and gRPC once,
so a client always gets `{"error": "<message>"}` with the right 4xx/5xx.
"""

from __future__ import annotations

from typing import ClassVar


class PredictorError(Exception):
    """Base class: a message meant for the client and an HTTP status."""

    status_code: ClassVar[int] = 500
    grpc_code: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInput(PredictorError):
    """The request is malformed; the message names the offending field."""

    status_code = 400
    grpc_code = "INVALID_ARGUMENT"


class PayloadTooLarge(PredictorError):
    """The body exceeds the configured byte limit."""

    status_code = 413
    grpc_code = "RESOURCE_EXHAUSTED"


class NotFound(PredictorError):
    """A named thing (model, tweet, user) does not exist."""

    status_code = 404
    grpc_code = "NOT_FOUND"


class UpstreamError(PredictorError):
    """A dependency (tweet source) answered with an error."""

    status_code = 502
    grpc_code = "UNAVAILABLE"


class UpstreamUnavailable(PredictorError):
    """A dependency is rate limiting or unreachable; retry later."""

    status_code = 503
    grpc_code = "UNAVAILABLE"


class NotReady(PredictorError):
    """The model is not loaded yet, or the server is draining."""

    status_code = 503
    grpc_code = "UNAVAILABLE"
