"""Work for nobody is not done: a request past its deadline gets 504 / DEADLINE_EXCEEDED and
its queued texts never reach the model; a client that disconnects (REST) or cancels (gRPC)
has its queued texts dropped. A slow model keeps the engine busy so texts really queue."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import orjson
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc

from harness.inprocess import InProcessPredictor
from harness.process import poll
from harness.scrape import sample_sum
from tests.fixtures.fake_models import write_slow_model
from tests.fixtures.v2_grpc import infer_request

PREDICT = "/v1/models/sentiment:predict"
FORWARD_S = 1.0  # one forward pass of the slow model (calibrated at build, roughly)


@pytest.fixture(scope="module")
def server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessPredictor]:
    root = tmp_path_factory.mktemp("deadlines")
    slow = write_slow_model(tiny_model_dir, root / "slow", FORWARD_S)
    env = {"PREDICTOR_MAX_BATCH_SIZE": "1", "PREDICTOR_WARMUP_BATCHES": "0"}
    proc = InProcessPredictor(slow, root / "predictor.log", env=env).start().wait_ready(120)
    yield proc
    proc.stop()


def _metric(server: InProcessPredictor, name: str, **labels: str) -> float:
    return sample_sum(server.url, name, model="sentiment", **labels)


def _forward_passes(server: InProcessPredictor) -> float:
    return _metric(server, "predictor_batch_size_count")


def _busy(server: InProcessPredictor) -> threading.Thread:
    """Occupy the engine with one fresh text (never a cache hit) for about FORWARD_S, in the
    background; returns once its forward pass has started (its queue wait is observed)."""
    started = _metric(server, "predictor_queue_wait_seconds_count")
    body = {"instances": [f"busy {time.monotonic_ns()}"]}
    thread = threading.Thread(
        target=lambda: httpx.post(f"{server.url}{PREDICT}", json=body, timeout=30)
    )
    thread.start()
    poll(
        lambda: _metric(server, "predictor_queue_wait_seconds_count") > started,
        10,
        "the busy text's forward pass",
    )
    return thread


def test_a_request_past_its_deadline_is_504_and_never_reaches_the_model(
    server: InProcessPredictor,
) -> None:
    expired = _metric(server, "predictor_dropped_texts_total", reason="expired")
    passes = _forward_passes(server)
    busy = _busy(server)
    resp = httpx.post(
        f"{server.url}{PREDICT}",
        json={"instances": [f"late {time.monotonic_ns()}", "late two"]},
        headers={"x-request-timeout": "0.1"},
        timeout=30,
    )
    busy.join()
    assert resp.status_code == 504, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert "deadline" in resp.json()["error"]
    time.sleep(FORWARD_S)  # had they stayed queued, the engine would run them now
    assert _forward_passes(server) == passes + 1  # the busy text only
    assert _metric(server, "predictor_dropped_texts_total", reason="expired") == expired + 2


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_a_bad_timeout_header_is_400_naming_it(server: InProcessPredictor, value: str) -> None:
    resp = httpx.post(
        f"{server.url}{PREDICT}",
        json={"instances": ["x"]},
        headers={"x-request-timeout": value},
        timeout=30,
    )
    assert resp.status_code == 400 and "x-request-timeout" in resp.json()["error"]


def test_a_client_that_disconnects_has_its_queued_texts_dropped(
    server: InProcessPredictor,
) -> None:
    cancelled = _metric(server, "predictor_dropped_texts_total", reason="cancelled")
    passes = _forward_passes(server)
    busy = _busy(server)
    body = orjson.dumps({"instances": [f"gone {n} {time.monotonic_ns()}" for n in range(8)]})
    head = (
        f"POST {PREDICT} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.http_port)) as sock:
        sock.sendall(head + body)
        poll(lambda: _metric(server, "predictor_inflight_requests") >= 2, 10, "queued")
    # closed: the 8 texts wait behind the busy one, for nobody
    poll(
        lambda: (
            _metric(server, "predictor_dropped_texts_total", reason="cancelled") == cancelled + 8
        ),
        10,
        "the 8 texts dropped",
    )
    busy.join()
    time.sleep(FORWARD_S)
    assert _forward_passes(server) == passes + 1
    assert _metric(server, "predictor_requests_total", code="499") >= 1


def test_a_grpc_deadline_is_deadline_exceeded_and_drops_the_texts(
    server: InProcessPredictor,
) -> None:
    dropped = sum(
        _metric(server, "predictor_dropped_texts_total", reason=r) for r in ("expired", "cancelled")
    )
    passes = _forward_passes(server)
    busy = _busy(server)
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stamp = str(time.monotonic_ns()).encode()
            stub.ModelInfer(infer_request(b"a" + stamp, b"b" + stamp, b"c" + stamp), timeout=0.2)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    busy.join()
    time.sleep(FORWARD_S)
    assert _forward_passes(server) == passes + 1
    after = sum(
        _metric(server, "predictor_dropped_texts_total", reason=r) for r in ("expired", "cancelled")
    )
    assert after == dropped + 3
