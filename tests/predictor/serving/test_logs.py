"""Structured logs: one JSON object a line, each line of a request carrying its id.

Checked on a real predictor's log file: the id a client sends (or the one the
server makes up) comes back as a header or gRPC trailer and appears on every
line logged for that request; health, readiness and metrics calls are not
access-logged.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

import grpc
import httpx
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc

from predictor.serving.logs import REQUEST_ID, JsonFormatter
from tests.fixtures.predictor_proc import PredictorProcess
from tests.fixtures.v2_grpc import infer_request


def _lines(server: PredictorProcess, request_id: str, wait: float = 5.0) -> list[dict[str, Any]]:
    """The server's log lines for one request id, polled until its access line (the last one
    a request writes, after the response is sent) is there or `wait` runs out."""
    deadline = time.monotonic() + wait
    while True:
        found = [e for e in _entries(server) if e.get("request_id") == request_id]
        done = any(e.get("logger") == "predictor.access" for e in found)
        if done or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _entries(server: PredictorProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.logs().splitlines() if line.strip()]


def _rid() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def test_formatter_writes_json_with_request_id_and_extras() -> None:
    record = logging.makeLogRecord(
        {"name": "t", "levelname": "INFO", "msg": "hello %s", "args": ("x",), "status": 201}
    )
    token = REQUEST_ID.set("rid-1")
    try:
        entry = json.loads(JsonFormatter().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert entry["msg"] == "hello x"
    assert entry["request_id"] == "rid-1"
    assert entry["status"] == 201
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"])


def test_client_request_id_is_echoed_and_logged(predictor: PredictorProcess) -> None:
    rid = _rid()
    resp = httpx.post(
        f"{predictor.url}/v1/models/sentiment:predict",
        json={"instances": ["log me"]},
        headers={"x-request-id": rid},
    )
    assert resp.status_code == 200
    assert resp.headers["x-request-id"] == rid
    (access,) = [e for e in _lines(predictor, rid) if e["logger"] == "predictor.access"]
    assert access["status"] == 200
    assert access["duration_ms"] > 0
    assert "/v1/models/sentiment:predict" in access["msg"]


def test_every_line_of_a_failed_request_carries_its_id(predictor: PredictorProcess) -> None:
    rid = _rid()
    resp = httpx.post(
        f"{predictor.url}/v1/models/sentiment:predict",
        json={"instances": []},
        headers={"x-request-id": rid},
    )
    assert resp.status_code == 400
    lines = _lines(predictor, rid)
    assert {e["logger"] for e in lines} == {"predictor.errors", "predictor.access"}, lines


def test_server_makes_up_an_id_when_none_or_a_bad_one_is_sent(predictor: PredictorProcess) -> None:
    for headers in ({}, {"x-request-id": "x" * 500}, {"x-request-id": 'a"b{c}'}):
        resp = httpx.post(
            f"{predictor.url}/v1/models/sentiment:predict",
            json={"instances": ["no id"]},
            headers=headers,
        )
        rid = resp.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
        assert _lines(predictor, rid), f"no log line for the server-made id {rid}"


def test_health_and_metrics_are_not_access_logged(predictor: PredictorProcess) -> None:
    rid = _rid()
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/sentiment/ready", "/metrics"):
        resp = httpx.get(f"{predictor.url}{path}", headers={"x-request-id": rid})
        assert resp.status_code == 200, path
    # A request after them, so the log has surely caught up when we look.
    marker = _rid()
    httpx.post(
        f"{predictor.url}/v1/models/sentiment:predict",
        json={"instances": ["marker"]},
        headers={"x-request-id": marker},
    )
    assert _lines(predictor, marker)
    assert _lines(predictor, rid, wait=0) == []


def test_grpc_request_id_in_trailer_and_access_log(predictor: PredictorProcess) -> None:
    rid = _rid()
    request = infer_request(b"grpc log")
    with grpc.insecure_channel(predictor.grpc_target) as channel:
        stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
        stub.ServerReady(pb.ServerReadyRequest(), metadata=[("x-request-id", rid)])
        _, call = stub.ModelInfer.with_call(request, metadata=[("x-request-id", rid)], timeout=30)
    assert ("x-request-id", rid) in tuple(call.trailing_metadata() or ())
    lines = _lines(predictor, rid)
    (access,) = [e for e in lines if e["logger"] == "predictor.access"]  # ServerReady: quiet
    assert access["status"] == 200
    assert access["msg"].endswith("/ModelInfer 200")


def test_every_line_of_the_log_is_json(predictor: PredictorProcess) -> None:
    text = predictor.logs()
    assert text.strip()
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            assert isinstance(json.loads(line), dict), f"line {n} is not a JSON object: {line}"


def test_formatter_survives_strings_utf8_cannot_encode() -> None:
    """A client's lone surrogate in a message, an argument or an extra costs nothing."""
    record = logging.makeLogRecord(
        {
            "name": "t",
            "levelname": "INFO",
            "msg": "rejected %s",
            "args": ("out\ud800put",),
            "field": {"name": "x\udfff", "sizes": [1, "y\udc80"]},
        }
    )
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["msg"] == "rejected out\\ud800put"
    assert entry["field"] == {"name": "x\\udfff", "sizes": [1, "y\\udc80"]}
