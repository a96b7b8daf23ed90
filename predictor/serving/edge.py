"""The edge of the server: what every REST request and gRPC call passes first.

Request ids, the body-size guard, the switched-off repository API, request
metrics and the access log live here, once for REST (an ASGI middleware) and
once for gRPC (an interceptor), and both turn errors into one response shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import grpc
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from opentelemetry.trace import INVALID_SPAN, Span
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from predictor import metrics
from predictor.deadline import DEADLINE, TIMEOUT_HEADER, deadline_after, parse_timeout
from predictor.errors import (
    BadInput,
    ClientClosed,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    NotReady,
    PayloadTooLarge,
    PredictorError,
    classify,
    handled_exceptions,
)
from predictor.serving import binary_v2
from predictor.serving.logs import CLIENT_REQUEST_ID, REQUEST_ID
from predictor.settings import ServingSettings
from predictor.tracing import UNTRACED, Tracing, error, exemplar

log = logging.getLogger("predictor.access")
errlog = logging.getLogger("predictor.errors")

REQUEST_ID_HEADER = "x-request-id"  # REST header and gRPC metadata key
_REQUEST_ID_B = REQUEST_ID_HEADER.encode()
_TIMEOUT_B = TIMEOUT_HEADER.encode()
_INFER_PATH = re.compile(
    r"^/v(?P<v>[12])/models/(?P<model>[^/:]+)(?::predict|/infer|(?P<explain>:explain))$"
)
EXPLAIN = "explain"  # `_observed`'s protocol for `:explain`: its own series, not predictions
# v2 paths that name a version, and the model part of any v1/v2 model path.
_VERSIONED_PATH = re.compile(
    r"^/v2/models/(?P<model>[^/:]+)/versions/(?P<version>[^/:]+)(?P<rest>/infer|/ready)?$"
)
_MODEL_PATH = re.compile(r"^/v[12]/models/(?P<model>[^/:]+)")
# Paths that take only some methods but that another route would otherwise catch (a GET on
# `:predict` matches the model-ready route with the name "sentiment:predict": a 404).
_FEEDBACK_PATH = re.compile(r"^/v1/models/[^/:]+/feedback$")
_QUIET_PATHS = ("/metrics", "/v2/health/", "/v1/models/", "/v2/models/")
# Probes, scrapes and metadata get no span: a kubelet probe every few seconds is no trace.
_UNTRACED_PATHS = re.compile(r"^(/|/metrics|/v2|/v2/health/\w+|/v[12]/models/[^/:]+(/ready)?)$")
_TRACE_KEYS = (b"traceparent", b"tracestate")
_REPOSITORY_PREFIX = "/v2/repository"
# gRPC twins of the quiet REST paths: health and metadata probes stay out of the access log.
_GRPC_QUIET_METHODS = (
    "/ServerLive",
    "/ServerReady",
    "/ModelReady",
    "/ServerMetadata",
    "/ModelMetadata",
)


def _request_id(client_value: str | None) -> str:
    """The caller's x-request-id when it is sane, else a fresh one."""
    if client_value and CLIENT_REQUEST_ID.fullmatch(client_value):
        return client_value
    return uuid.uuid4().hex


def _log_error(err: PredictorError, exc: BaseException) -> None:
    if err.status_code in (503, 504):  # overload, not ready, deadline: expected, no traceback
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
        headers=err.headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Replace KServe's handlers (which log a traceback per bad request and answer
    schema errors as FastAPI 422s) with one handler for everything."""
    handled: tuple[type[Exception], ...] = (Exception, *handled_exceptions())
    for exc_type in handled:
        app.add_exception_handler(exc_type, error_response)


class _Status:
    """The status a request ended with, set while it runs (HTTP code, or its twin for gRPC),
    and the body bytes it read and wrote (for its span)."""

    __slots__ = ("code", "received", "sent")

    def __init__(self, code: int) -> None:
        self.code = code
        self.received = 0
        self.sent = 0


@contextlib.contextmanager
def _observed(
    rid: str,
    series: tuple[str, str] | None,
    protocol: str,
    what: str,
    access: bool,
    span: Span = INVALID_SPAN,
) -> Iterator[_Status]:
    """One request, REST or gRPC: its id in the log context, in-flight gauge, request count
    and latency (inference calls only: `series` is their (model, version), resolved once so
    the gauge goes down where it went up), and the access line. The latency carries the
    trace as an exemplar when `span` (the edge's, started by the caller) is sampled."""
    token = REQUEST_ID.set(rid)
    start = time.perf_counter()
    status = _Status(500)
    if series is not None:
        metrics.INFLIGHT.labels(*series).inc()
    try:
        yield status
    finally:
        elapsed = time.perf_counter() - start
        if status.code >= 500 and span.is_recording():
            error(span, f"answered {status.code}")
        if series is not None:
            metrics.INFLIGHT.labels(*series).dec()
            trace = exemplar(span)
            if protocol == EXPLAIN:  # never counted as prediction traffic or latency
                metrics.EXPLAIN_REQUESTS.labels(*series, str(status.code)).inc()
                metrics.EXPLAIN_LATENCY.labels(*series).observe(elapsed, trace)
            else:
                metrics.REQUESTS.labels(*series, protocol, str(status.code)).inc()
                metrics.REQUEST_LATENCY.labels(*series, protocol).observe(elapsed, trace)
        if access:
            log.info(
                "%s %d",
                what,
                status.code,
                extra={"status": status.code, "duration_ms": round(elapsed * 1000, 3)},
            )
        REQUEST_ID.reset(token)


Versions = Callable[[], Mapping[str, str | None]]


def check_version(versions: Mapping[str, str | None], model: str, version: str) -> None:
    """The one version rule of every wire: a request naming a version gets the loaded one or
    404 naming it (503 while loading; 404 for a model this server does not have)."""
    if model not in versions:
        raise NotFound(f"Model with name {model} does not exist.")
    loaded = versions[model]
    if loaded is None:
        raise NotReady(f"model {model} is not ready (loading); retry shortly")
    if version != loaded:
        raise NotFound(
            f"model {model} has no version '{version}'; the loaded version is '{loaded}'"
        )


class EdgeMiddleware:
    """Pure ASGI (no per-request object churn): ids, size guard, metrics, access log.

    `versions` says which models this server has and the version loaded for each
    (None while loading): versioned v2 paths and `?model_version=` are answered
    here (404 for an unknown model or another version) or served as the unversioned
    path when they name the loaded version.
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: ServingSettings,
        versions: Versions,
        tracing: Tracing | None = None,
    ) -> None:
        self.app = app
        self.tracing = tracing or Tracing.off()
        self.max_body = settings.max_body_bytes
        self.repository_enabled = settings.enable_repository_api
        self.access_log = settings.access_log
        self.request_timeout_s = settings.request_timeout_s
        self.versions = versions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(_header(scope, _REQUEST_ID_B))
        try:
            scope = self._unversioned(scope)
            refusal = self._refuse(scope)
        except PredictorError as err:
            refusal = err
        path: str = scope["path"]
        infer = _INFER_PATH.match(path)
        model = infer.group("model") if infer else None
        protocol = "v1" if infer and infer.group("v") == "1" else "v2"
        if infer and infer.group("explain"):
            protocol = EXPLAIN
        access = self.access_log and (infer is not None or not path.startswith(_QUIET_PATHS))

        series = None if model is None else metrics.series_labels(self.versions(), model)
        traced = self.tracing.on and (infer is not None or not _UNTRACED_PATHS.match(path))
        with (
            self._span(scope, rid, infer, series) if traced else UNTRACED as span,
            _observed(rid, series, protocol, f"{scope['method']} {path}", access, span) as status,
        ):
            extra = [(_REQUEST_ID_B, rid.encode())]
            if traced:
                extra += [(k.encode(), v.encode()) for k, v in Tracing.response_headers(span)]

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status.code = message["status"]
                    message["headers"] = [*message.get("headers", []), *extra]
                elif traced:
                    status.sent += len(message.get("body", b""))
                await send(message)

            if infer and infer.group("v") == "2":
                _default_json_content_type(scope)
            if refusal is None and infer is not None:
                try:
                    self._set_deadline(scope)
                except PredictorError as err:
                    refusal = err
            try:
                if refusal is not None:
                    _log_error(refusal, refusal)
                    await _send_error(send_with_id, refusal)
                elif infer is not None:
                    limited = self._limited(receive, status)
                    if await _until_disconnect(self.app, scope, limited, send_with_id):
                        status.code = ClientClosed.status_code  # nobody is left to answer
                else:
                    await self.app(scope, self._limited(receive, status), send_with_id)
            finally:
                if span.is_recording():
                    _end_http_span(span, scope, status, infer is None)

    def _span(
        self, scope: Scope, rid: str, infer: re.Match[str] | None, series: tuple[str, str] | None
    ) -> contextlib.AbstractContextManager[Span]:
        """The request's server span, child of the caller's traceparent."""
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in _TRACE_KEYS
        }
        method: str = scope["method"]
        attributes: dict[str, str | int] = {
            "http.request.method": method,
            "url.scheme": scope.get("scheme", "http"),
            "predictor.request_id": rid,
        }
        name = method
        if infer is not None:
            route = _route(infer)
            attributes["http.route"] = route
            name = f"{method} {route}"
        if series is not None:
            attributes["predictor.model"], attributes["predictor.model.version"] = series
        return self.tracing.server_span(name, carrier, attributes=attributes)

    def _set_deadline(self, scope: Scope) -> None:
        """This request's deadline: the server's, or sooner if the caller asks (header)."""
        asked = _header(scope, _TIMEOUT_B)
        DEADLINE.set(
            deadline_after(self.request_timeout_s, None if asked is None else parse_timeout(asked))
        )

    def _unversioned(self, scope: Scope) -> Scope:
        """A path naming the loaded version, as the unversioned path; other versions: 404."""
        path: str = scope["path"]
        match = _VERSIONED_PATH.match(path)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        asked = [v for k, v in query if k == "model_version"]
        if match is None and not (asked and _MODEL_PATH.match(path)):
            return scope
        named = _MODEL_PATH.match(path)
        assert named is not None
        model = named.group("model")
        wanted = [match.group("version")] if match else []
        for version in [*wanted, *asked]:
            check_version(self.versions(), model, version)
        new_path = f"/v2/models/{model}{match.group('rest') or ''}" if match else path
        kept = urlencode([(k, v) for k, v in query if k != "model_version"])
        return {
            **scope,
            "path": new_path,
            "raw_path": new_path.encode(),
            "query_string": kept.encode("latin-1"),
        }

    def _refuse(self, scope: Scope) -> PredictorError | None:
        path: str = scope["path"]
        allowed = _allowed_methods(path)
        if allowed and scope["method"] not in allowed:
            return MethodNotAllowed(
                f"{scope['method']} is not served on {path}; it takes {', '.join(allowed)}",
                allowed,
            )
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
        binary = [v.decode("latin-1") for k, v in scope["headers"] if k == binary_v2.HEADER_B]
        if binary:
            binary_v2.header_length(binary)  # raises BadInput for a bad or repeated header
        return None

    def _limited(self, receive: Receive, status: _Status) -> Receive:
        """Count streamed body bytes too: chunked uploads carry no content-length."""
        seen = 0
        limit = self.max_body

        async def guarded() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                status.received = seen
                if seen > limit:
                    # An HTTPException, because FastAPI turns anything else raised
                    # while it reads a body into a generic 400.
                    raise HTTPException(413, f"request body exceeds the limit of {limit} bytes")
            return message

        return guarded


def _route(infer: re.Match[str]) -> str:
    """The low-cardinality route of an inference path (OpenTelemetry's `http.route`)."""
    if infer.group("v") == "2":
        return "/v2/models/{model}/infer"
    return "/v1/models/{model}:explain" if infer.group("explain") else "/v1/models/{model}:predict"


def _end_http_span(span: Span, scope: Scope, status: _Status, routed: bool) -> None:
    """The attributes known once the app answered; a route the router matched names it."""
    span.set_attribute("http.response.status_code", status.code)
    span.set_attribute("http.request.body.size", status.received)
    span.set_attribute("http.response.body.size", status.sent)
    route = getattr(scope.get("route"), "path", None) if routed else None
    if isinstance(route, str):
        span.set_attribute("http.route", route)
        span.update_name(f"{scope['method']} {route}")


async def _until_disconnect(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> bool:
    """Run the app, and cancel it if the client disconnects once its body is in: a request
    nobody waits for must not keep its texts queued for the model (they are dropped from
    the queue; a batch already running finishes). True when the client went away first."""
    body_in = asyncio.Event()
    disconnected: list[Message] = []

    async def tracked() -> Message:
        if disconnected:
            return disconnected[0]
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            body_in.set()
        return message

    async def watch() -> None:
        await body_in.wait()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected.append(message)
                return

    work = asyncio.ensure_future(app(scope, tracked, send))  # the request's context, copied
    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait((work, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not work.done():
            work.cancel()
        watcher.cancel()
    if work.cancelled() or not work.done():
        with contextlib.suppress(asyncio.CancelledError):
            await work
        return True
    work.result()  # the app's own exception, if any, as if called directly
    return False


def _allowed_methods(path: str) -> tuple[str, ...]:
    """The methods of a path that must not fall through to another route, else ()."""
    if _INFER_PATH.match(path):
        return ("POST",)
    if _FEEDBACK_PATH.match(path):
        return ("GET", "POST")
    return ()


def _default_json_content_type(scope: Scope) -> None:
    """A v2 body without the binary-tensor header is JSON, whatever its content type says.

    tritonclient's HTTP client sends all-JSON requests with no content type; KServe
    then takes the body for binary tensors and rejects it for lacking the header.
    """
    headers = scope["headers"]
    if any(k == binary_v2.HEADER_B for k, _ in headers):
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
                *((k.lower().encode(), v.encode()) for k, v in err.headers.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


Behaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class GrpcEdge(grpc.aio.ServerInterceptor):
    """gRPC twin of EdgeMiddleware: request id, metrics, access log, one error mapping.

    Requests reach it as raw bytes and are parsed here: grpc's own parsing of a
    body that is not the method's protobuf (or is truncated, or holds invalid
    UTF-8 in a string field) fails before any interceptor runs and answers
    UNKNOWN; parsed here, it is INVALID_ARGUMENT with a message.
    """

    def __init__(
        self,
        versions: Versions,
        access_log: bool = True,
        request_timeout_s: float = 60.0,
        message_timeout_s: float = ServingSettings.model_fields["http_body_timeout_s"].default,
        tracing: Tracing | None = None,
    ) -> None:
        self.versions = versions
        self.access_log = access_log
        self.request_timeout_s = request_timeout_s
        self.message_timeout_s = message_timeout_s
        self.tracing = tracing or Tracing.off()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler  # unknown method (grpc answers UNIMPLEMENTED) or a stream
        method_name: str = details.method
        behaviour: Behaviour = handler.unary_unary
        parse: Callable[[bytes], Any] | None = handler.request_deserializer

        async def call(requests: object, context: grpc.aio.ServicerContext) -> Any:
            raw = await self._message(context)
            return await self._serve(behaviour, parse, raw, context, method_name)

        # Served as client-streaming (the same bytes on the wire as unary): grpc runs a unary
        # handler only once the whole message is in, so a message that never completes would
        # hold its stream with no deadline at all; here the handler starts with the stream
        # and the message must arrive within `message_timeout_s`.
        return grpc.stream_unary_rpc_method_handler(
            call, request_deserializer=None, response_serializer=handler.response_serializer
        )

    async def _message(self, context: grpc.aio.ServicerContext) -> bytes:
        """The call's one request message, or the call aborted: DEADLINE_EXCEEDED when it does
        not arrive within the deadline, INVALID_ARGUMENT when the stream ends without one."""
        try:
            raw = await asyncio.wait_for(context.read(), self.message_timeout_s)
        except TimeoutError:
            errlog.info(
                "request rejected: message not received within %g s",
                self.message_timeout_s,
                extra={"status": 408},
            )
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"request message not received within {self.message_timeout_s:g} s",
            )
        if raw is grpc.aio.EOF or not isinstance(raw, bytes):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the call sent no message")
        return raw

    async def _serve(
        self,
        behaviour: Behaviour,
        parse: Callable[[bytes], Any] | None,
        raw: bytes,
        context: grpc.aio.ServicerContext,
        method_name: str,
    ) -> Any:
        metadata = dict(context.invocation_metadata() or ())
        client_rid = metadata.get(REQUEST_ID_HEADER)
        rid = _request_id(client_rid if isinstance(client_rid, str) else None)
        infer = method_name.endswith("/ModelInfer")
        request, bad = _parse(parse, raw, method_name)
        model = str(getattr(request, "model_name", "")) if infer else None
        quiet = method_name.endswith(_GRPC_QUIET_METHODS)
        access = self.access_log and not quiet
        series = None if model is None else metrics.series_labels(self.versions(), model)
        traced = self.tracing.on and not quiet
        with (
            self._span(method_name, metadata, rid, series) if traced else UNTRACED as span,
            _observed(rid, series, "grpc", f"GRPC {method_name}", access, span) as status,
        ):
            trailer = (
                (REQUEST_ID_HEADER, rid),
                *(Tracing.response_headers(span) if traced else ()),
            )
            status.code = 200
            try:
                if bad is not None:
                    raise bad
                named = _grpc_version(request)
                if named is not None:
                    check_version(self.versions(), *named)
                if infer:
                    DEADLINE.set(deadline_after(self.request_timeout_s, context.time_remaining()))
                result = await behaviour(request, context)
                # Set only now: KServe's servicer reads trailing metadata as request headers.
                context.set_trailing_metadata(trailer)
                if span.is_recording():
                    _end_grpc_span(span, grpc.StatusCode.OK, len(raw), result)
                return result
            except Exception as exc:
                err = classify(exc)
                status.code = err.status_code
                _log_error(err, exc)
                code = getattr(grpc.StatusCode, err.grpc_code)
                if span.is_recording():
                    _end_grpc_span(span, code, len(raw), None)
                await context.abort(code, err.message, trailing_metadata=trailer)

    def _span(
        self,
        method_name: str,
        metadata: Mapping[str, Any],
        rid: str,
        series: tuple[str, str] | None,
    ) -> contextlib.AbstractContextManager[Span]:
        """The call's server span, child of the caller's traceparent metadata."""
        carrier = {
            k: v for k in ("traceparent", "tracestate") if isinstance(v := metadata.get(k), str)
        }
        service, _, method = method_name.lstrip("/").rpartition("/")
        attributes: dict[str, str] = {
            "rpc.system": "grpc",
            "rpc.service": service,
            "rpc.method": method,
            "predictor.request_id": rid,
        }
        if series is not None:
            attributes["predictor.model"], attributes["predictor.model.version"] = series
        return self.tracing.server_span(method_name.lstrip("/"), carrier, attributes=attributes)


def _end_grpc_span(span: Span, code: grpc.StatusCode, received: int, result: Any) -> None:
    span.set_attribute("rpc.grpc.status_code", int(code.value[0]))
    span.set_attribute("rpc.request.body.size", received)
    size = getattr(result, "ByteSize", None)
    if callable(size):
        span.set_attribute("rpc.response.body.size", int(size()))


def _grpc_version(request: Any) -> tuple[str, str] | None:
    """(model, version) when a v2 gRPC request names a version: ModelInfer's `model_version`,
    ModelReady's and ModelMetadata's `version`; empty means the loaded one, as on REST."""
    for model_field, version_field in (("model_name", "model_version"), ("name", "version")):
        version = getattr(request, version_field, "")
        if isinstance(version, str) and version:
            return str(getattr(request, model_field, "")), version
    return None


def _parse(
    parse: Callable[[bytes], Any] | None, raw: bytes, method_name: str
) -> tuple[Any, BadInput | None]:
    """The request message, or the reason the bytes are not one."""
    if parse is None:
        return raw, None
    try:
        return parse(raw), None
    except Exception as exc:  # protobuf's DecodeError, or what a broken message raises
        kind = method_name.rsplit("/", 1)[-1]
        return None, BadInput(
            f"the request is not a valid {kind} protobuf message ({exc}); check that the "
            "client uses the v2 (inference.GRPCInferenceService) protocol"
        )
