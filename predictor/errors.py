"""Typed errors of the predictor, each with the one status code it maps to.

Every module raises these. `classify` below is the one mapping point (KServe's
and FastAPI's exceptions become ours); the edge (`predictor.serving.edge`: the REST
handlers and middleware, the gRPC interceptor) turns the result into the
response, so a client always gets `{"error": "<message>"}` with the right
HTTP status or gRPC code.
"""

from __future__ import annotations

from typing import ClassVar


class PredictorError(Exception):
    """Base class: a message meant for the client and an HTTP status."""

    status_code: ClassVar[int] = 500
    grpc_code: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str) -> None:
        # A message may quote the client's input; keep it encodable (a lone surrogate
        # is shown escaped), so answering and logging it can never fail.
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        super().__init__(message)
        self.message = message

    @property
    def headers(self) -> dict[str, str]:
        """Response headers the status needs (WWW-Authenticate for 401, Allow for 405)."""
        return {}


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
    """The model is not loaded yet, the server is draining, or it sheds load: retry (the REST
    answer says when, `Retry-After`)."""

    status_code = 503
    grpc_code = "UNAVAILABLE"
    retry_after_s: ClassVar[int] = 1

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class DeadlineExceeded(PredictorError):
    """The request's deadline passed before its answer was ready; texts still queued were
    dropped without reaching the model."""

    status_code = 504
    grpc_code = "DEADLINE_EXCEEDED"


class Forbidden(PredictorError):
    """The endpoint exists but is switched off by configuration, or the credential presented
    is not one it accepts."""

    status_code = 403
    grpc_code = "PERMISSION_DENIED"


class Unauthorized(PredictorError):
    """A route that needs a bearer token was called without one."""

    status_code = 401
    grpc_code = "UNAUTHENTICATED"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="predictor"'}


class MethodNotAllowed(PredictorError):
    """A known path called with a method it does not serve; `allow` lists those it does."""

    status_code = 405
    grpc_code = "UNIMPLEMENTED"

    def __init__(self, message: str, allow: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allow = allow

    @property
    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allow)}


class Unsupported(PredictorError):
    """A protocol feature this predictor does not implement (KServe raises
    NotImplementedError for them). 404, not 501: the resource does not exist here, and
    a 5xx would count as a server fault on every dashboard and retry policy."""

    status_code = 404
    grpc_code = "UNIMPLEMENTED"


class ClientClosed(PredictorError):
    """The client went away before its request was read (nginx's 499): not a server
    fault, so it must not count as a 5xx; nobody receives the answer."""

    status_code = 499
    grpc_code = "CANCELLED"


class HTTPStatusError(PredictorError):
    """A plain HTTP error raised by the web framework (unknown route, wrong method)."""

    def __init__(
        self, message: str, status_code: int, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code  # type: ignore[misc]
        self._headers = dict(headers or {})

    @property
    def headers(self) -> dict[str, str]:
        return self._headers


_GRPC_BY_STATUS = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    413: "RESOURCE_EXHAUSTED",
}


def _framework_errors() -> dict[str, tuple[type[Exception], ...]]:
    """KServe's and the web framework's exceptions, by what they become (imported on first
    use: training and the tools import this module without a server)."""
    from fastapi.exceptions import RequestValidationError
    from kserve.errors import (
        InferenceError,
        InvalidInput,
        ModelNotFound,
        ModelNotReady,
        ServerNotLive,
        ServerNotReady,
        UnsupportedProtocol,
    )
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    return {
        "closed": (ClientDisconnect,),
        "bad": (InvalidInput,),
        "schema": (RequestValidationError,),
        "missing": (ModelNotFound,),
        "unready": (ModelNotReady, ServerNotReady, ServerNotLive),
        "unsupported": (NotImplementedError, UnsupportedProtocol),
        "http": (HTTPException,),
        "inference": (InferenceError,),
    }


def handled_exceptions() -> tuple[type[Exception], ...]:
    """Every exception type `classify` maps by name: the edge registers one handler for each
    (a type only the catch-all `Exception` handler takes is re-raised by Starlette after the
    answer, and logged by uvicorn as an application error)."""
    return (PredictorError, *(t for types in _framework_errors().values() for t in types))


def classify(exc: BaseException) -> PredictorError:
    """Map any exception met while serving to one typed error: the single mapping point.

    KServe's and FastAPI's own exceptions become ours, so REST and gRPC answer
    the same status with the same `{"error": ...}` message shape.
    """
    if isinstance(exc, PredictorError):
        return exc
    kinds = _framework_errors()
    if isinstance(exc, kinds["closed"]):
        return ClientClosed("the client closed the connection before sending the whole request")
    if isinstance(exc, kinds["bad"]):
        return BadInput(str(exc))
    if isinstance(exc, kinds["schema"]):
        # FastAPI reports both arms of KServe's `InferenceRequest | bytes` body; the
        # bytes arm only adds noise, and the model class name is no help to a client.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[2:]) or 'body'}: {e.get('msg')}"
            for e in exc.errors()  # type: ignore[attr-defined]
            if tuple(e.get("loc", ()))[1:2] != ("bytes",)
        )
        return BadInput(f"invalid request body: {problems}")
    if isinstance(exc, kinds["missing"]):
        return NotFound(str(exc))
    if isinstance(exc, kinds["unready"]):
        return NotReady(str(exc))
    if isinstance(exc, kinds["unsupported"]):
        return Unsupported(str(exc) or "not implemented")
    if isinstance(exc, kinds["http"]):
        status: int = exc.status_code  # type: ignore[attr-defined]
        err = HTTPStatusError(
            str(exc.detail),  # type: ignore[attr-defined]
            status,
            getattr(exc, "headers", None),
        )
        err.grpc_code = _GRPC_BY_STATUS.get(status, "UNKNOWN")  # type: ignore[misc]
        return err
    if isinstance(exc, kinds["inference"]):
        return PredictorError(f"inference failed: {exc}")
    return PredictorError(f"internal error ({type(exc).__name__})")
