"""One test per KServe seam (predictor/serving/kserve_compat.py): an upgrade that moves one of
KServe's internals fails here, by name, before it fails somewhere obscure."""

from __future__ import annotations

import argparse
import json

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


def test_seam_module_global_app_is_a_fastapi_app() -> None:
    from kserve import model_server

    app = kserve_compat.rest_app()
    assert isinstance(app, FastAPI) and app is model_server.app


def _fresh_app_with_routes() -> FastAPI:
    app = FastAPI()
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
