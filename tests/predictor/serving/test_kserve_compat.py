"""One test per KServe seam (predictor/serving/kserve_compat.py): an upgrade that moves one of
KServe's internals fails here, by name, before it fails somewhere obscure."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from kserve import InferInput, ModelServer

from predictor.serving import kserve_compat


def test_pinned_version_is_the_one_installed() -> None:
    """The seams were checked against one release; another one needs this file re-read."""
    assert kserve_compat.INSTALLED_VERSION == kserve_compat.KSERVE_VERSION


def test_seam_model_server_parser_takes_kserve_flags() -> None:
    parser = kserve_compat.cli_parser()
    ours = argparse.ArgumentParser(parents=[parser], add_help=False)
    args = ours.parse_args(["--model_name", "m", "--http_port", "1234", "--grpc_port", "1235"])
    assert (args.model_name, args.http_port, args.grpc_port) == ("m", 1234, 1235)
    assert args.workers == 1 and isinstance(args.enable_grpc, bool)


def test_new_rest_app_is_set_up_as_kserves_own_and_not_shared() -> None:
    """KServe's handlers are written for its global app's ORJSON default; ours copies that
    set-up but every server gets a fresh app."""
    from kserve import model_server

    app = kserve_compat.new_rest_app()
    assert isinstance(app, FastAPI) and app is not model_server.app
    assert app is not kserve_compat.new_rest_app()
    default = app.router.default_response_class
    assert getattr(default, "value", default) is model_server.app.router.default_response_class


def test_seam_fastapi_native_telemetry_is_off() -> None:
    """Seam `FastAPI(telemetry=...)`: FastAPI traces on its own through any provider it is
    given or finds set globally; the app we build passes the keys that turn it off."""
    from fastapi.telemetry import TelemetryConfig
    from fastapi.testclient import TestClient
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    assert set(kserve_compat.NO_FASTAPI_TELEMETRY) <= set(TelemetryConfig.__annotations__)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def spans_of_one_request(config: Any) -> int:
        exporter.clear()
        app = FastAPI(telemetry={**config, "tracer_provider": provider})
        app.get("/x")(lambda: {})
        assert TestClient(app).get("/x").status_code == 200
        return len(exporter.get_finished_spans())

    assert spans_of_one_request({}) > 0  # FastAPI's default: its own spans
    assert spans_of_one_request(kserve_compat.NO_FASTAPI_TELEMETRY) == 0
    telemetry = kserve_compat.new_rest_app()._telemetry
    assert {k: telemetry[k] for k in kserve_compat.NO_FASTAPI_TELEMETRY} == (  # type: ignore[literal-required]
        kserve_compat.NO_FASTAPI_TELEMETRY
    )


def _fresh_app_with_routes() -> FastAPI:
    app = kserve_compat.new_rest_app()
    kserve_compat.register_routes(app, ModelServer(enable_grpc=False))
    return app


def test_seam_register_routes_adds_kserve_v1_v2_live_and_metrics() -> None:
    paths = set(_fresh_app_with_routes().openapi()["paths"])
    for path in (
        "/",
        "/metrics",
        "/v1/models/{model_name}:predict",
        "/v2/models/{model_name}/infer",
        "/v2/health/ready",
        "/v2/models/{model_name}",
    ):
        assert path in paths, f"KServe no longer registers {path}"


def test_seam_route_shadowing_puts_ours_first() -> None:
    app = _fresh_app_with_routes()
    with TestClient(app) as client:  # KServe's own answer: ready whenever the process is up
        assert client.get("/v2/health/ready").json() == {"ready": True}

    async def not_ready() -> dict[str, bool]:
        return {"ready": False, "ours": True}

    kserve_compat.shadow_route(app, "/v2/health/ready", not_ready, ["GET"])
    with TestClient(app) as client:
        assert client.get("/v2/health/ready").json() == {"ready": False, "ours": True}


def test_seam_raw_data_tells_binary_from_json_inputs() -> None:
    as_json = InferInput("text", [1], "BYTES", data=["hello"])
    assert kserve_compat.has_raw_data(as_json) is False
    as_binary = InferInput("text", [1], "BYTES")
    as_binary.set_data_from_numpy(np.array([b"hello"], dtype=object), binary_data=True)
    assert kserve_compat.has_raw_data(as_binary) is True


def test_seam_raw_data_breaks_loudly_when_the_attribute_moves() -> None:
    class Moved:
        pass

    with pytest.raises(kserve_compat.SeamBroken, match=r"InferInput\._raw_data"):
        kserve_compat.has_raw_data(Moved())


def test_seam_grpc_servicer_and_generated_registration() -> None:
    servicer_methods = ("ServerReady", "ModelInfer", "RepositoryModelLoad", "ModelMetadata")
    for name in servicer_methods:
        assert callable(getattr(kserve_compat.InferenceServicer, name, None)), name
    assert kserve_compat.pb.ServerReadyResponse(ready=True).ready is True

    class Recorder:
        def __init__(self) -> None:
            self.handlers: list[object] = []

        def add_generic_rpc_handlers(self, handlers: object) -> None:
            self.handlers.append(handlers)

        def add_registered_method_handlers(self, name: str, handlers: object) -> None:
            self.handlers.append((name, handlers))

    server = Recorder()
    ms = ModelServer(enable_grpc=False)
    kserve_compat.add_servicer(
        kserve_compat.InferenceServicer(ms.dataplane, ms.model_repository_extension), server
    )
    assert server.handlers, "the generated code registered no handlers"


def test_seam_binary_decoder_runs_our_check_before_kserve_decodes() -> None:
    """KServe's dataplane still decodes v2 binary bodies through decode_inference_request,
    with the JSON length taken from the Inference-Header-Content-Length header."""
    from predictor.errors import BadInput

    server = ModelServer(enable_grpc=False)
    seen: list[tuple[bytes, int]] = []

    def check(body: bytes, json_length: int) -> None:
        seen.append((body, json_length))
        if b"lie" in body:
            raise BadInput("checked first")

    kserve_compat.guard_binary_decoder(server, check)
    spec = {"name": "t", "shape": [1], "datatype": "INT32", "parameters": {"binary_data_size": 4}}
    head = json.dumps({"inputs": [spec]}).encode()
    body = head + np.array([7], dtype=np.int32).tobytes()
    headers = {"inference-header-content-length": str(len(head))}
    request, _ = server.dataplane.decode(body, headers, "v2", "m")  # KServe's own entry
    assert seen == [(body, len(head))]
    assert request.inputs[0].as_numpy().tolist() == [7]
    with pytest.raises(BadInput, match="checked first"):
        server.dataplane.decode(head + b"lie!", headers, "v2", "m")


def _overridden(cls: type, base: type) -> set[str]:
    """Public or hook methods `cls` defines that `base` (or its bases) also has."""
    return {n for n, v in vars(cls).items() if callable(v) and hasattr(base, n)}


def test_seam_servicer_overrides_exist_upstream() -> None:
    """Seam `InferenceServicer` overrides: our readiness and the repository guard replace
    these methods; if KServe renames one, ours would silently never be called."""
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceServicer

    from predictor.serving.server import _Servicer

    for name in kserve_compat.SERVICER_OVERRIDES:
        assert callable(getattr(kserve_compat.InferenceServicer, name, None)), name
        assert callable(getattr(GRPCInferenceServiceServicer, name, None)), name
    ours = _overridden(_Servicer, kserve_compat.InferenceServicer) - {"__init__"}
    assert ours == set(kserve_compat.SERVICER_OVERRIDES)


def test_seam_model_hooks_exist_upstream() -> None:
    """Seam `kserve.Model` hooks: KServe's data plane calls these by name."""
    from kserve import Model

    from predictor.model import SentimentModel

    for name in kserve_compat.MODEL_OVERRIDES:
        assert callable(getattr(Model, name, None)), f"kserve.Model has no {name}"
    ours = _overridden(SentimentModel, Model) - {"__init__"}
    assert ours == set(kserve_compat.MODEL_OVERRIDES)
