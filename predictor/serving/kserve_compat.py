"""Every reach into KServe's internals, fenced in one module.

The predictor uses KServe's data plane, its v1/v2 REST handlers and its gRPC
servicer as they are, but owns the process life cycle (background load,
readiness that follows the model, a drain on SIGTERM). That needs a few
things KServe does not offer as a public API. Each one is a named seam
here, with a test in `tests/predictor/serving/test_kserve_compat.py` that names it,
so a KServe upgrade breaks in one place with a message that says what moved.

Public hooks we deliberately do not use: `ModelServer.start()` registers
its own signal handlers, runs `asyncio.run` itself and refuses to start
before a model is ready (we bind first and load in the background so
probes can see a loading pod); `Model.start()`/`start_engine()` are for
models that run their own server (vLLM), which ours does not.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from kserve import InferInput, ModelServer
from kserve import model_server as _model_server
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.rest import server as _rest_server
from kserve.protocol.rest.v1_endpoints import register_v1_endpoints
from kserve.protocol.rest.v2_endpoints import register_v2_endpoints

# The release these seams were written and tested against (requirements.txt pins it).
KSERVE_VERSION = "0.21.0"
INSTALLED_VERSION = version("kserve")

__all__ = [
    "KSERVE_VERSION",
    "MODEL_OVERRIDES",
    "SERVICER_OVERRIDES",
    "InferenceServicer",
    "ModelServer",
    "SeamBroken",
    "add_servicer",
    "cli_parser",
    "guard_binary_decoder",
    "has_raw_data",
    "new_rest_app",
    "pb",
    "register_routes",
    "shadow_route",
]


# Seam `InferenceServicer` overrides (predictor.serving.server._Servicer): readiness that
# follows the model, and the repository guard. A rename upstream would drop the guard.
SERVICER_OVERRIDES = (
    "ServerReady",
    "ServerMetadata",
    "ModelMetadata",
    "RepositoryModelLoad",
    "RepositoryModelUnload",
)
# Seam `kserve.Model` hooks (predictor.model.SentimentModel), called by KServe's data plane.
MODEL_OVERRIDES = (
    "load",
    "preprocess",
    "validate",
    "predict",
    "explain",
    "postprocess",
    "get_input_types",
    "get_output_types",
)


class SeamBroken(RuntimeError):
    """A KServe internal this module relies on is gone or changed shape."""

    def __init__(self, seam: str, detail: str) -> None:
        super().__init__(
            f"KServe seam '{seam}' broke (written for kserve {KSERVE_VERSION}, running "
            f"{INSTALLED_VERSION}): {detail}; see predictor/serving/kserve_compat.py"
        )
        self.seam = seam


def cli_parser() -> Any:
    """Seam `model_server.parser`: KServe's argparse parser, a module global, so our
    command line takes exactly KServe's flags (--model_name, --http_port, ...)."""
    parser = getattr(_model_server, "parser", None)
    if parser is None or not hasattr(parser, "parse_args"):
        raise SeamBroken("model_server.parser", "kserve.model_server has no argparse parser")
    return parser


def new_rest_app() -> FastAPI:
    """A fresh FastAPI app set up as KServe's module-global one (`kserve.model_server.app`):
    KServe's handlers return plain dicts and numpy values, written for its ORJSON default
    response class. Each server builds its own, so tests can drive one in process."""
    from fastapi.responses import ORJSONResponse

    return FastAPI(
        title="KServe ModelServer",
        version=INSTALLED_VERSION,
        docs_url=None,
        redoc_url=None,
        default_response_class=ORJSONResponse,
        telemetry=NO_FASTAPI_TELEMETRY,
    )


# FastAPI's own OpenTelemetry: off, whatever the environment or a global provider says.
# Left on it would read OTEL_* itself (with FASTAPI_OTEL_AUTO_CONFIGURE=true), export its
# own metrics and logs, nest a second server span under the edge's and record validation
# errors with their input values, i.e. the texts; the edge owns a request's trace.
NO_FASTAPI_TELEMETRY: Any = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


def register_routes(app: FastAPI, server: ModelServer) -> None:
    """Seam `RESTServer._register_endpoints`: KServe's own routes (`/`, `/metrics`, v1, v2)
    without the rest of `RESTServer` (its timing middleware logs four lines a request,
    and its uvicorn server would own the process)."""
    handler = getattr(_rest_server, "metrics_handler", None)
    if handler is None:
        raise SeamBroken("RESTServer._register_endpoints", "rest.server.metrics_handler is gone")
    app.add_api_route("/", server.dataplane.live, methods=["GET"])
    app.add_api_route("/metrics", handler, methods=["GET"])
    register_v1_endpoints(app, server.dataplane, server.model_repository_extension)
    register_v2_endpoints(app, server.dataplane, server.model_repository_extension)


def shadow_route(app: FastAPI, path: str, endpoint: Callable[..., Any], methods: list[str]) -> None:
    """Seam `route shadowing`: serve `path` with our endpoint instead of KServe's.

    Starlette takes the first matching route, so ours is put first; KServe's
    stays registered behind it (e.g. `/v2/health/ready`, which KServe answers
    200 whenever the process is up, even while the model is loading).
    """
    app.add_api_route(path, endpoint, methods=methods)
    routes = app.router.routes
    ours = routes.pop()
    if not isinstance(ours, APIRoute) or ours.path != path:
        raise SeamBroken("route shadowing", "FastAPI did not append the route last")
    routes.insert(0, ours)


def has_raw_data(inp: InferInput) -> bool:
    """Seam `InferInput._raw_data`: whether a v2 input came as binary tensor data (the
    binary-data extension or gRPC raw_input_contents) rather than JSON `data`."""
    if not hasattr(inp, "_raw_data"):
        raise SeamBroken("InferInput._raw_data", "InferInput no longer keeps its raw bytes there")
    return inp._raw_data is not None


def add_servicer(servicer: InferenceServicer, server: Any) -> None:
    """Seam `grpc_predict_v2_pb2_grpc`: KServe's generated v2 gRPC registration."""
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)


def guard_binary_decoder(server: ModelServer, check: Callable[[bytes, int], None]) -> None:
    """Seam `DataPlane.decode_inference_request`: KServe's decoder of the v2 binary-data
    extension (`InferRequest.from_bytes`) trusts the header length, `binary_data_size`,
    BYTES length prefixes and shapes, and answers 500 when they lie. `check(body,
    json_length)` runs first (it raises a 400 naming the field); KServe decodes what
    passes. The header's own format is checked at the edge, which sees repeated headers."""
    from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER

    dataplane = server.dataplane
    original = getattr(dataplane, "decode_inference_request", None)
    if original is None:
        raise SeamBroken(
            "DataPlane.decode_inference_request", "the v2 request decoder is gone or renamed"
        )

    def guarded(body: Any, headers: dict[str, str], model_name: str) -> Any:
        if isinstance(body, (bytes, bytearray)):
            raw = headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
            if raw is not None and raw.strip().isdigit():
                check(bytes(body), int(raw))
        return original(body, headers, model_name)

    dataplane.decode_inference_request = guarded
