"""A real predictor process, answered by real clients over real sockets."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as thttp
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
from prometheus_client.parser import text_string_to_metric_families

from harness.scrape import read_counter
from tests.fixtures.predictor_proc import PredictorProcess

LABELS = ["negative", "neutral", "positive"]
TEXTS = ["I love this so much", "worst service ever", "the bus comes at nine"]


def v1(server: PredictorProcess, body: object, **kw: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/models/sentiment:predict", json=body, timeout=30, **kw)


def v2_json(server: PredictorProcess, body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/v2/models/sentiment/infer", json=body, timeout=30)


def metric(server: PredictorProcess, name: str) -> float:
    """Sum of one series over all its labels, read from /metrics."""
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


def check_probabilities(probs: np.ndarray, n: int) -> None:
    assert probs.shape == (n, 3)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


# --- protocols -------------------------------------------------------------
def test_v1_rest(predictor: PredictorProcess) -> None:
    resp = v1(predictor, {"instances": [TEXTS[0], {"text": TEXTS[1]}]})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-request-id"]
    preds = resp.json()["predictions"]
    assert len(preds) == 2
    for p in preds:
        assert p["label"] in LABELS
        assert set(p["probabilities"]) == set(LABELS)
        assert p["score"] == max(p["probabilities"].values())
        assert p["truncated"] is False


def test_same_text_same_answer_across_protocols(predictor: PredictorProcess) -> None:
    rest = v1(predictor, {"instances": TEXTS}).json()["predictions"]
    client = thttp.InferenceServerClient(predictor.url.removeprefix("http://"))
    inp = thttp.InferInput("text", [len(TEXTS)], "BYTES")
    inp.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=object))
    result = client.infer("sentiment", [inp])
    probs = result.as_numpy("probabilities")
    labels = [x.decode() for x in result.as_numpy("label")]
    check_probabilities(probs, len(TEXTS))
    assert labels == [p["label"] for p in rest]
    expected = np.array([[p["probabilities"][lb] for lb in LABELS] for p in rest])
    assert np.allclose(probs, expected, atol=1e-6)


def test_tritonclient_http_json_and_metadata(predictor: PredictorProcess) -> None:
    client = thttp.InferenceServerClient(predictor.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("sentiment")
    meta = client.get_model_metadata("sentiment")
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert {o["name"] for o in meta["outputs"]} == {"label", "probabilities"}
    inp = thttp.InferInput("text", [2], "BYTES")
    inp.set_data_from_numpy(np.array([b"good", b"bad"], dtype=object), binary_data=False)
    out = thttp.InferRequestedOutput("probabilities", binary_data=False)
    result = client.infer("sentiment", [inp], outputs=[out])
    check_probabilities(result.as_numpy("probabilities"), 2)
    assert result.as_numpy("label") is None  # only what was asked for


def grpc_probe(server: PredictorProcess, *texts: str) -> dict[str, object]:
    """tritonclient's gRPC client, run in a child process (see triton_grpc_probe)."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.fixtures.triton_grpc_probe", server.grpc_target, *texts],
        capture_output=True, text=True, timeout=60, check=True, errors="surrogateescape",
    )  # fmt: skip
    return dict(json.loads(out.stdout))


def test_tritonclient_grpc(predictor: PredictorProcess) -> None:
    seen = grpc_probe(predictor, *TEXTS)
    assert seen["live"] and seen["ready"] and seen["model_ready"]
    assert all(lb in LABELS for lb in seen["labels"])  # type: ignore[attr-defined]
    check_probabilities(np.array(seen["probabilities"]), 3)
    # the repository API is off over gRPC too, and the model stays
    assert "PERMISSION_DENIED" in str(seen["unload"])
    assert seen["model_ready_after_unload"] is True


def test_tritonclient_grpc_bad_input_is_invalid_argument(predictor: PredictorProcess) -> None:
    seen = grpc_probe(predictor, "ok", "\udcff\udcfe")  # lone bytes 0xff 0xfe: not UTF-8
    error = seen["error"]
    assert isinstance(error, dict)
    assert "INVALID_ARGUMENT" in error["status"]
    assert "not valid UTF-8" in error["message"]


async def test_kserve_clients(predictor: PredictorProcess) -> None:
    def request() -> InferRequest:
        inp = InferInput("text", [2], "BYTES")
        inp.set_data_from_numpy(np.array([b"what a day", b"ugh"], dtype=object), binary_data=False)
        return InferRequest(model_name="sentiment", infer_inputs=[inp])

    rest = InferenceRESTClient(RESTConfig(protocol="v2"))
    try:
        assert await rest.is_server_ready(predictor.url)
        res = await rest.infer(predictor.url, request(), model_name="sentiment")
        check_probabilities(res.outputs[1].as_numpy(), 2)
    finally:
        await rest.close()
    grpc_client = InferenceGRPCClient(predictor.grpc_target)
    try:
        assert await grpc_client.is_server_ready()
        res = await grpc_client.infer(request())
        by_name = {o.name: o for o in res.outputs}
        check_probabilities(by_name["probabilities"].as_numpy(), 2)
    finally:
        await grpc_client.close()


# --- batching --------------------------------------------------------------
async def test_concurrent_requests_are_coalesced(predictor: PredictorProcess) -> None:
    before_batches = metric(predictor, "predictor_batch_size_count")
    before_texts = metric(predictor, "predictor_batch_size_sum")
    async with httpx.AsyncClient(base_url=predictor.url, timeout=30) as client:
        resps = await asyncio.gather(
            *(
                client.post("/v1/models/sentiment:predict", json={"instances": [f"text {i}"]})
                for i in range(64)
            )
        )
    assert all(r.status_code == 200 for r in resps)
    batches = metric(predictor, "predictor_batch_size_count") - before_batches
    texts = metric(predictor, "predictor_batch_size_sum") - before_texts
    assert texts == 64
    assert batches < 64, f"64 concurrent requests ran as {batches} forward passes"


# --- bad input -------------------------------------------------------------
V2_TEXT = {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["hi"]}


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("v1", {"instances": []}, "empty"),
        ("v1", {"instances": [42]}, "instances[0] must be a string"),
        ("v1", {"nope": 1}, "unexpected field(s) nope"),
        ("v1", {"instances": ["x"] * 300}, "limit is 256"),
        ("v2", {"inputs": []}, "missing input 'text'"),
        ("v2", {"inputs": [V2_TEXT, {**V2_TEXT, "name": "more"}]}, "unexpected input(s)"),
        ("v2", {"inputs": [{**V2_TEXT, "datatype": "INT32", "data": [1]}]}, "datatype BYTES"),
        ("v2", {"inputs": [{**V2_TEXT, "shape": [3]}]}, "has shape [3] but carries 1"),
        ("v2", {"inputs": [{"name": "text", "shape": [1]}]}, "invalid request body"),
        ("v2", {"inputs": [{**V2_TEXT, "data": [7]}]}, "must be a string"),
    ],
)
def test_bad_input_is_400_naming_the_problem(
    predictor: PredictorProcess, kind: str, body: object, message: str
) -> None:
    resp = v1(predictor, body) if kind == "v1" else v2_json(predictor, body)
    assert resp.status_code == 400, resp.text
    assert message in resp.json()["error"]


def test_non_json_body_is_400(predictor: PredictorProcess) -> None:
    resp = httpx.post(
        f"{predictor.url}/v1/models/sentiment:predict",
        content=b"{oops",
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 400
    assert "Unrecognized request format" in resp.json()["error"]


def test_body_over_limit_is_413(predictor: PredictorProcess) -> None:
    big = {"instances": ["x" * (5 * 1024 * 1024)]}
    resp = v1(predictor, big)
    assert resp.status_code == 413
    assert "exceeds the limit" in resp.json()["error"]

    def chunks():  # no content-length: the streamed-body guard must catch it
        for _ in range(6):
            yield b"x" * (1024 * 1024)

    resp = httpx.post(f"{predictor.url}/v1/models/sentiment:predict", content=chunks(), timeout=30)
    assert resp.status_code == 413


def test_long_text_is_truncated_and_flagged(predictor: PredictorProcess) -> None:
    resp = v1(predictor, {"instances": ["word " * 2000, "short"]})
    assert resp.status_code == 200
    flags = [p["truncated"] for p in resp.json()["predictions"]]
    assert flags == [True, False]
    resp = v2_json(
        predictor, {"inputs": [{**V2_TEXT, "shape": [2], "data": ["word " * 2000, "x"]}]}
    )
    assert resp.json()["parameters"] == {"truncated_count": 1, "truncated_indices": "0"}


def test_unknown_model_is_404_and_repository_is_off(predictor: PredictorProcess) -> None:
    resp = httpx.post(f"{predictor.url}/v1/models/nope:predict", json={"instances": ["x"]})
    assert resp.status_code == 404
    assert "nope" in resp.json()["error"]
    resp = httpx.post(f"{predictor.url}/v2/repository/models/sentiment/unload")
    assert resp.status_code == 403
    assert "disabled" in resp.json()["error"]
    assert httpx.get(f"{predictor.url}/v2/health/ready").status_code == 200


def _requests_total(server: PredictorProcess, **labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "predictor_requests_total"
        and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_errors_are_counted_by_status(predictor: PredictorProcess) -> None:
    before = _requests_total(predictor, protocol="v1", code="400")
    ok_before = _requests_total(predictor, protocol="v1", code="200")
    assert v1(predictor, {"instances": []}).status_code == 400
    assert _requests_total(predictor, protocol="v1", code="400") == before + 1
    assert _requests_total(predictor, protocol="v1", code="200") == ok_before


def test_v2_metadata_names_version_and_precision_like_model_info(
    predictor: PredictorProcess,
) -> None:
    meta = httpx.get(f"{predictor.url}/v2/models/sentiment", timeout=10).json()
    params = meta["parameters"]
    assert params["precision"] in {"fp32", "bf16"} and params["device"] == "cpu"
    assert meta["versions"] == [params["version"]] and params["version"] != "unloaded"
    info = read_counter(predictor.url, "predictor_model_info", by="precision")
    assert info == {params["precision"]: 1.0}  # the metric and the metadata agree
    assert httpx.get(f"{predictor.url}/v2/models/nope", timeout=10).status_code == 404


# --- one version rule and one metadata on every wire ---------------------------------------
def _stub(predictor: PredictorProcess) -> tuple[Any, Any]:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc

    channel = grpc.insecure_channel(predictor.grpc_target)
    return channel, grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)


def test_grpc_answers_another_version_404_like_rest(predictor: PredictorProcess) -> None:
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    from tests.fixtures.v2_grpc import infer_request

    loaded = httpx.get(f"{predictor.url}/v2/models/sentiment", timeout=10).json()["versions"][0]
    rest = httpx.get(f"{predictor.url}/v2/models/sentiment/versions/999", timeout=10)
    assert rest.status_code == 404 and loaded in rest.json()["error"]
    channel, stub = _stub(predictor)
    with channel:
        wrong = infer_request(b"hello")
        wrong.model_version = "999"
        for call, request in (
            (stub.ModelInfer, wrong),
            (stub.ModelReady, pb.ModelReadyRequest(name="sentiment", version="999")),
            (stub.ModelMetadata, pb.ModelMetadataRequest(name="sentiment", version="999")),
        ):
            with pytest.raises(grpc.RpcError) as err:
                call(request, timeout=30)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            assert f"the loaded version is '{loaded}'" in str(err.value.details())
        right = infer_request(b"hello")
        right.model_version = loaded
        assert stub.ModelInfer(right, timeout=30).model_version == loaded
        ready = stub.ModelReady(pb.ModelReadyRequest(name="sentiment", version=loaded))
        assert ready.ready is True


def test_grpc_metadata_carries_versions_and_parameters(predictor: PredictorProcess) -> None:
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    params = httpx.get(f"{predictor.url}/v2/models/sentiment", timeout=10).json()["parameters"]
    channel, stub = _stub(predictor)
    with channel:
        meta, call = stub.ModelMetadata.with_call(pb.ModelMetadataRequest(name="sentiment"))
    assert list(meta.versions) == [params["version"]]
    initial = dict(call.initial_metadata())
    assert {k: initial[f"model-{k}"] for k in params} == params


def test_only_served_extensions_are_advertised(predictor: PredictorProcess) -> None:
    """The repository API is off, so neither wire advertises its extension."""
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    rest = httpx.get(f"{predictor.url}/v2", timeout=10).json()
    assert rest["extensions"] == [] and rest["name"]
    channel, stub = _stub(predictor)
    with channel:
        grpc_meta = stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=30)
    assert list(grpc_meta.extensions) == [] and grpc_meta.name == rest["name"]
