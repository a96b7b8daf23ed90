"""Traces on the wire: gRPC metadata in and out (an in-process server on real ports, spans
in memory), and OTLP/HTTP export from a predictor child process configured only through
OTEL_* variables to a collector stand-in on loopback that decodes what it receives."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from harness.inprocess import InProcessPredictor
from harness.otlp import OtlpReceiver
from harness.process import poll
from harness.servers import PredictorProcess
from predictor.tracing import TracingSettings, build_tracing
from tests.fixtures.v2_grpc import infer_request

CALLER_SPAN = "00f067aa0ba902b7"


def traceparent(trace_id: str, sampled: bool = True) -> str:
    return f"00-{trace_id}-{CALLER_SPAN}-{'01' if sampled else '00'}"


def test_grpc_call_is_traced_under_the_callers_metadata(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    tracing = build_tracing(TracingSettings(traces_sampler_arg=0.0), exporter=exporter)
    server = InProcessPredictor(tiny_model_dir, tmp_path / "p.log", tracing=tracing)
    server.start().wait_ready()
    trace_id = "6af7651916cd43dd8448eb211c80319c"
    text = b"quokkas whisper over grpc"
    try:
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
            _, call = stub.ModelInfer.with_call(
                infer_request(text),
                metadata=(("traceparent", traceparent(trace_id)), ("x-request-id", "grpc-rid-1")),
                timeout=30,
            )
        trailer = dict(call.trailing_metadata() or ())
        assert trailer["traceparent"].startswith(f"00-{trace_id}-")

        def flushed() -> bool:
            names = {s.name for s in exporter.get_finished_spans()}
            return "predictor.writebehind.flush" in names

        poll(flushed, 10, "the write-behind flush span")
    finally:
        server.stop()
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == int(trace_id, 16)]
    by_name = {s.name: s for s in spans}
    edge = by_name["inference.GRPCInferenceService/ModelInfer"]
    assert edge.kind is SpanKind.SERVER
    assert edge.parent is not None and edge.parent.span_id == int(CALLER_SPAN, 16)
    attrs = dict(edge.attributes or {})
    assert attrs["predictor.request_id"] == "grpc-rid-1"
    assert (attrs["rpc.system"], attrs["rpc.method"], attrs["rpc.grpc.status_code"]) == (
        "grpc",
        "ModelInfer",
        0,
    )
    assert trailer["traceparent"].split("-")[2] == format(edge.context.span_id, "016x")
    assert {
        "predictor.decode",
        "predictor.classify",
        "predictor.cache.lookup",
        "predictor.queue",
        "predictor.batch",
        "predictor.encode",
        "predictor.writebehind.flush",
    } <= set(by_name)
    for span in spans:
        values = [str(v) for v in (span.attributes or {}).values()]
        assert not [v for v in values if "quokkas" in v or "whisper" in v], span.name


@pytest.fixture
def collector() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


def test_spans_reach_an_otlp_collector_from_a_process_set_up_by_otel_env(
    tiny_model_dir: Path, tmp_path: Path, collector: OtlpReceiver
) -> None:
    """Only OTEL_* configure it. The export delay is a minute, so what arrives was sent by
    the drain on SIGTERM: the last requests' spans are not lost with the pod. Only ours
    arrive (one server span, no FastAPI spans, no metrics or logs), whatever FastAPI's
    own auto-configuration is told."""
    env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_SERVICE_NAME": "predictor-under-test",
        "OTEL_RESOURCE_ATTRIBUTES": "k8s.pod.name=predictor-0",
        "OTEL_TRACES_SAMPLER_ARG": "0",  # default sampler: only a sampled caller is traced
        "OTEL_BSP_SCHEDULE_DELAY": "60000",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "NO_PROXY": "127.0.0.1,localhost",
        # FastAPI's own telemetry would read OTEL_* too and send its spans, metrics, logs.
        "FASTAPI_OTEL_AUTO_CONFIGURE": "true",
    }
    proc = PredictorProcess(tiny_model_dir, tmp_path / "p.log", env=env).start()
    try:
        proc.wait_ready()
        trace_id = "7af7651916cd43dd8448eb211c80319c"
        url = f"{proc.url}/v1/models/sentiment:predict"
        traced = httpx.post(
            url,
            json={"instances": ["sent to the collector"]},
            headers={"traceparent": traceparent(trace_id)},
            timeout=30,
        )
        untraced = httpx.post(url, json={"instances": ["not sampled"]}, timeout=30)
        assert traced.status_code == untraced.status_code == 200
        time.sleep(0.5)  # the write-behind flush after the response
        assert collector.requests == []  # nothing before the drain, a minute early
    finally:
        assert proc.stop() == 0
    assert {path for path, _ in collector.requests} == {"/v1/traces"}
    assert set(collector.encodings) == {"gzip"}
    received = collector.spans()
    mine = [s for _, s in received if s.trace_id.hex() == trace_id]
    names = {s.name for s in mine}
    assert {
        "POST /v1/models/{model}:predict",
        "predictor.classify",
        "predictor.batch",
        "predictor.writebehind.flush",
    } <= names
    edges = [s for s in mine if s.kind == OtlpSpan.SPAN_KIND_SERVER]
    assert len(edges) == 1, [(s.name, s.kind) for s in mine]
    (edge,) = edges
    assert not [s.name for _, s in received if s.name.startswith("fastapi")]
    assert edge.parent_span_id.hex() == CALLER_SPAN
    rid = {a.key: a.value.string_value for a in edge.attributes}["predictor.request_id"]
    assert rid == traced.headers["x-request-id"]
    resource = received[0][0]
    assert resource["service.name"] == "predictor-under-test"
    assert resource["k8s.pod.name"] == "predictor-0"
    unsampled = untraced.headers["traceparent"].split("-")[1]
    assert not [s for _, s in received if s.trace_id.hex() == unsampled]
