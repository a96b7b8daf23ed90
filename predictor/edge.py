"""The edge of the server: what every REST request and gRPC call passes first.

Request ids, the body-size guard, the switched-off repository API, request
metrics and the access log live here, once for REST (an ASGI middleware) and
once for gRPC (an interceptor), and both turn errors into one response shape.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from grpc_interceptor.server import AsyncServerInterceptor
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from predictor import metrics
from predictor.errors import Forbidden, PayloadTooLarge, PredictorError, classify
from predictor.logs import REQUEST_ID
from predictor.settings import ServingSettings

log = logging.getLogger("predictor.access")
errlog = logging.getLogger("predictor.errors")

REQUEST_ID_HEADER = "x-request-id"
_INFER_PATH = re.compile(r"^/v(?P<v>[12])/models/(?P<model>[^/:]+)(?::predict|/infer)$")
_QUIET_PATHS = ("/metrics", "/v2/health/", "/v1/models/", "/v2/models/")
_REPOSITORY_PREFIX = "/v2/repository"
# gRPC twins of the quiet REST paths: health and metadata probes stay out of the access log.
_GRPC_QUIET_METHODS = (
    "/ServerLive",
    "/ServerReady",
    "/ModelReady",
    "/ServerMetadata",
    "/ModelMetadata",
)


# A client's id is kept only if it is short and plain, so it cannot bloat or forge log lines.
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _request_id(client_value: str | None) -> str:
    """The caller's x-request-id when it is sane, else a fresh one."""
    if client_value and _CLIENT_REQUEST_ID.fullmatch(client_value):
        return client_value
    return uuid.uuid4().hex


def _log_error(err: PredictorError, exc: BaseException) -> None:
    if err.status_code == 503:  # overload or not ready: expected, and a traceback each would flood
        errlog.warning("request refused: %s", err.message, extra={"status": 503})
    elif err.status_code >= 500:
        errlog.error("request failed: %s", err.message, exc_info=exc)
    else:
        errlog.info("request rejected: %s", err.message, extra={"status": err.status_code})


async def error_response(_: Request, exc: Exception) -> Response:
    """Every REST error, ours or the framework's, as `{"error": message}`."""
    err = classify(exc)
    _log_error(err, exc)
    return Response(
        orjson.dumps({"error": err.message}),
        status_code=err.status_code,
        media_type="application/json",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Replace KServe's handlers (which log a traceback per bad request and answer
    schema errors as FastAPI 422s) with one handler for everything."""
    for exc_type in (Exception, PredictorError, RequestValidationError, HTTPException):
        app.add_exception_handler(exc_type, error_response)
    from kserve import errors as kerrors

    for exc_type in (
        kerrors.InvalidInput,
        kerrors.InferenceError,
        kerrors.ModelNotFound,
        kerrors.ModelNotReady,
        kerrors.ServerNotReady,
        kerrors.ServerNotLive,
        kerrors.UnsupportedProtocol,
        NotImplementedError,
    ):
        app.add_exception_handler(exc_type, error_response)


class EdgeMiddleware:
    """Pure ASGI (no per-request object churn): ids, size guard, metrics, access log."""

    def __init__(self, app: ASGIApp, settings: ServingSettings) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.repository_enabled = settings.enable_repository_api
        self.access_log = settings.access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        rid = _request_id(_header(scope, b"x-request-id"))
        token = REQUEST_ID.set(rid)
        start = time.perf_counter()
        status = 500
        infer = _INFER_PATH.match(path)
        model = infer.group("model") if infer else ""
        if infer:
            metrics.INFLIGHT.labels(model).inc()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        if infer and infer.group("v") == "2":
            _default_json_content_type(scope)
        try:
            refusal = self._refuse(scope, path)
            if refusal is not None:
                await _send_error(send_with_id, refusal)
            else:
                await self.app(scope, self._limited(receive), send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            if infer:
                protocol = "v1" if infer.group("v") == "1" else "v2"
                metrics.INFLIGHT.labels(model).dec()
                metrics.REQUESTS.labels(model, protocol, str(status)).inc()
                metrics.REQUEST_LATENCY.labels(model, protocol).observe(elapsed)
            if self.access_log and (infer or not path.startswith(_QUIET_PATHS)):
                log.info(
                    "%s %s %d",
                    scope["method"],
                    path,
                    status,
                    extra={"status": status, "duration_ms": round(elapsed * 1000, 3)},
                )
            REQUEST_ID.reset(token)

    def _refuse(self, scope: Scope, path: str) -> PredictorError | None:
        if path.startswith(_REPOSITORY_PREFIX) and not self.repository_enabled:
            return Forbidden(
                "the model repository API (load/unload) is disabled; "
                "set PREDICTOR_ENABLE_REPOSITORY_API=true to enable it"
            )
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return PayloadTooLarge(
                f"request body of {length} bytes exceeds the limit of {self.max_body} bytes"
            )
        return None

    def _limited(self, receive: Receive) -> Receive:
        """Count streamed body bytes too: chunked uploads carry no content-length."""
        seen = 0
        limit = self.max_body

        async def guarded() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # An HTTPException, because FastAPI turns anything else raised
                    # while it reads a body into a generic 400.
                    raise HTTPException(413, f"request body exceeds the limit of {limit} bytes")
            return message

        return guarded


def _default_json_content_type(scope: Scope) -> None:
    """A v2 body without the binary-tensor header is JSON, whatever its content type says.

    tritonclient's HTTP client sends all-JSON requests with no content type; KServe
    then takes the body for binary tensors and rejects it for lacking the header.
    """
    headers = scope["headers"]
    if any(k == b"inference-header-content-length" for k, _ in headers):
        return
    scope["headers"] = [(k, v) for k, v in headers if k != b"content-type"] + [
        (b"content-type", b"application/json")
    ]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _send_error(send: Send, err: PredictorError) -> None:
    body = orjson.dumps({"error": err.message})
    await send(
        {
            "type": "http.response.start",
            "status": err.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GrpcEdge(AsyncServerInterceptor):
    """gRPC twin of EdgeMiddleware: request id, metrics, access log, one error mapping."""

    def __init__(self, access_log: bool = True) -> None:
        self.access_log = access_log

    async def intercept(
        self,
        method: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext,
        method_name: str,
    ) -> Any:
        metadata = dict(context.invocation_metadata() or ())
        client_rid = metadata.get(REQUEST_ID_HEADER)
        rid = _request_id(client_rid if isinstance(client_rid, str) else None)
        token = REQUEST_ID.set(rid)
        infer = method_name.endswith("/ModelInfer")
        model = getattr(request_or_iterator, "model_name", "") if infer else ""
        start = time.perf_counter()
        status = 200
        if infer:
            metrics.INFLIGHT.labels(model).inc()
        trailer = ((REQUEST_ID_HEADER, rid),)
        try:
            result = await method(request_or_iterator, context)
            # Set only now: KServe's servicer reads trailing metadata as request headers.
            context.set_trailing_metadata(trailer)
            return result
        except Exception as exc:
            err = classify(exc)
            status = err.status_code
            _log_error(err, exc)
            code = getattr(grpc.StatusCode, err.grpc_code)
            await context.abort(code, err.message, trailing_metadata=trailer)
        finally:
            elapsed = time.perf_counter() - start
            if infer:
                metrics.INFLIGHT.labels(model).dec()
                metrics.REQUESTS.labels(model, "grpc", str(status)).inc()
                metrics.REQUEST_LATENCY.labels(model, "grpc").observe(elapsed)
            if self.access_log and not method_name.endswith(_GRPC_QUIET_METHODS):
                log.info(
                    "GRPC %s %d",
                    method_name,
                    status,
                    extra={"status": status, "duration_ms": round(elapsed * 1000, 3)},
                )
            REQUEST_ID.reset(token)
