"""Traces of one request, in process with the SDK's in-memory exporter: the span tree and
its parents, the caller's trace kept and answered, a batch linked to every request it
carried (and back), the write-behind flush linked to its requests, exemplars, and no text
content on any span unless PREDICTOR_TRACE_TEXT says so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from predictor.tracing import UNTRACED, TracingSettings, build_tracing
from tests.fixtures.inprocess import InProcess, serve_in_process, settings_for

in_module_loop = pytest.mark.asyncio(loop_scope="module")
PREDICT = "/v1/models/sentiment:predict"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def traceparent(trace_id: str = CALLER_TRACE, sampled: bool = True) -> dict[str, str]:
    return {"traceparent": f"00-{trace_id}-{CALLER_SPAN}-{'01' if sampled else '00'}"}


async def predict(
    app: InProcess, text: str, trace_id: str | None = CALLER_TRACE, sampled: bool = True
) -> httpx.Response:
    """One v1 predict, under the caller's `traceparent` unless `trace_id` is None."""
    headers = traceparent(trace_id, sampled) if trace_id is not None else {}
    return await app.client.post(PREDICT, json={"instances": [text]}, headers=headers)


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(tiny_model_dir: Path, exporter: InMemorySpanExporter) -> AsyncIterator[InProcess]:
    """The default sampler with ratio 0: only requests whose caller sampled are traced, so
    every span here belongs to a test's own traceparent. A 30 ms batch delay lets
    concurrent requests share a forward pass."""
    tracing = build_tracing(TracingSettings(traces_sampler_arg=0.0), exporter=exporter)
    settings = settings_for(tiny_model_dir, max_batch_delay_ms=30.0)
    async for served in serve_in_process(settings, tracing):
        yield served


def of_trace(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    wanted = int(trace_id, 16)
    return [s for s in exporter.get_finished_spans() if s.context.trace_id == wanted]


def named(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def all_values(spans: Sequence[ReadableSpan]) -> Iterator[str]:
    """Every string a backend would receive: names, attributes, events, links, resource."""
    for s in spans:
        yield s.name
        for attrs in (
            s.attributes,
            s.resource.attributes,
            *(e.attributes for e in s.events),
            *(link.attributes for link in s.links),
        ):
            for value in (attrs or {}).values():
                yield from (str(v) for v in value) if isinstance(value, tuple) else (str(value),)
        yield from (e.name for e in s.events)


@in_module_loop
async def test_one_request_yields_its_span_tree_under_the_callers_span(
    app: InProcess, exporter: InMemorySpanExporter
) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    resp = await predict(app, "the tree of one request", trace_id)
    assert resp.status_code == 200, resp.text
    await app.flushed()
    spans = of_trace(exporter, trace_id)
    edge = named(spans, "POST /v1/models/{model}:predict")
    assert edge.kind is SpanKind.SERVER and parent_of(edge) == int(CALLER_SPAN, 16)
    assert edge.parent is not None and edge.parent.is_remote
    attrs = dict(edge.attributes or {})
    assert attrs["predictor.request_id"] == resp.headers["x-request-id"]
    assert attrs["http.response.status_code"] == 200
    assert attrs["http.route"] == "/v1/models/{model}:predict"
    assert attrs["http.request.body.size"] == len(resp.request.content)
    assert attrs["http.response.body.size"] == len(resp.content)
    classify = named(spans, "predictor.classify")
    assert {s.name: parent_of(s) for s in spans if s is not edge} == {
        "predictor.decode": edge.context.span_id,
        "predictor.classify": edge.context.span_id,
        "predictor.encode": edge.context.span_id,
        "predictor.cache.lookup": classify.context.span_id,
        "predictor.queue": classify.context.span_id,
        "predictor.batch": classify.context.span_id,  # the request is its batch's first
        "predictor.writebehind.flush": classify.context.span_id,
    }
    lookup = dict(named(spans, "predictor.cache.lookup").attributes or {})
    assert (lookup["predictor.cache.hits"], lookup["predictor.cache.misses"]) == (0, 1)
    assert lookup["predictor.cache.backend"] == "memory"
    batch, queue = named(spans, "predictor.batch"), named(spans, "predictor.queue")
    battrs = dict(batch.attributes or {})
    assert battrs["predictor.batch.size"] == 1
    assert isinstance(length := battrs["predictor.batch.padded_length"], int) and length > 0
    assert battrs["predictor.precision"] in {"fp32", "bf16"}
    assert [link.context.span_id for link in batch.links] == [queue.context.span_id]
    assert [link.context.span_id for link in queue.links] == [batch.context.span_id]
    assert queue.end_time is not None and batch.start_time is not None
    assert queue.end_time <= batch.start_time + 1_000_000  # the wait ends as the batch starts
    flush = named(spans, "predictor.writebehind.flush")
    assert classify.context.span_id in {link.context.span_id for link in flush.links}


@in_module_loop
async def test_the_response_carries_the_callers_trace(app: InProcess) -> None:
    resp = await predict(app, "x")
    version, trace_id, span_id, flags = resp.headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", CALLER_TRACE, "01")
    assert span_id != CALLER_SPAN  # the server's own span, a child of the caller's


@in_module_loop
async def test_an_unsampled_caller_gets_no_spans_but_its_trace_back(
    app: InProcess, exporter: InMemorySpanExporter
) -> None:
    trace_id = "1af7651916cd43dd8448eb211c80319c"
    resp = await predict(app, "not sampled", trace_id, sampled=False)
    await app.flushed()
    assert resp.status_code == 200
    assert of_trace(exporter, trace_id) == []
    assert resp.headers["traceparent"].startswith(f"00-{trace_id}-")
    assert int(resp.headers["traceparent"].rsplit("-", 1)[1], 16) & 1 == 0


@in_module_loop
async def test_concurrent_requests_ride_one_batch_linked_both_ways(
    app: InProcess, exporter: InMemorySpanExporter
) -> None:
    ids = [f"{n:02d}f7651916cd43dd8448eb211c80319c" for n in range(20, 24)]
    answers = await asyncio.gather(*(predict(app, f"batched {n}", t) for n, t in enumerate(ids)))
    assert all(a.status_code == 200 for a in answers)
    queues = {t: named(of_trace(exporter, t), "predictor.queue") for t in ids}
    batches = [s for s in exporter.get_finished_spans() if s.name == "predictor.batch"]
    (batch,) = [b for b in batches if (b.attributes or {}).get("predictor.batch.requests") == 4]
    assert {link.context.span_id for link in batch.links} == {
        q.context.span_id for q in queues.values()
    }
    for queue in queues.values():
        assert [link.context.span_id for link in queue.links] == [batch.context.span_id]
    # The batch sits in exactly one of the four traces, under that request's classify span.
    homes = [t for t in ids if batch.context.trace_id == int(t, 16)]
    assert len(homes) == 1


@in_module_loop
async def test_no_text_content_on_any_span_unless_the_setting_says_so(
    app: InProcess, exporter: InMemorySpanExporter
) -> None:
    text = "zebracorn quietly devours marmalade"
    trace_id = "2af7651916cd43dd8448eb211c80319c"
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}
    resp = await app.client.post(
        "/v2/models/sentiment/infer", json=body, headers=traceparent(trace_id)
    )
    assert resp.status_code == 200, resp.text
    await app.flushed()
    spans = of_trace(exporter, trace_id)
    assert len(spans) >= 7
    words = [text, *text.split()]
    assert not [v for v in all_values(spans) for w in words if w in v]
    # The same search finds the text once PREDICTOR_TRACE_TEXT is on: it can fail.
    app.server.model.tracing.trace_text = True
    try:
        again = "2bf7651916cd43dd8448eb211c80319c"
        await app.client.post("/v2/models/sentiment/infer", json=body, headers=traceparent(again))
    finally:
        app.server.model.tracing.trace_text = False
    assert any(text in v for v in all_values(of_trace(exporter, again)))


@in_module_loop
async def test_latency_histogram_carries_the_trace_as_an_exemplar(app: InProcess) -> None:
    trace_id = "3af7651916cd43dd8448eb211c80319c"
    await predict(app, "exemplar", trace_id)
    scrape = await app.client.get("/metrics", headers={"accept": "application/openmetrics-text"})
    lines = [
        line
        for line in scrape.text.splitlines()
        if line.startswith("predictor_request_duration_seconds_bucket") and "# {" in line
    ]
    assert any(f'trace_id="{trace_id}"' in line for line in lines), lines[:3]


@in_module_loop
async def test_probes_and_scrapes_are_not_traced(
    app: InProcess, exporter: InMemorySpanExporter
) -> None:
    trace_id = "5af7651916cd43dd8448eb211c80319c"
    for path in ("/v2/health/ready", "/metrics", "/v2/models/sentiment"):
        resp = await app.client.get(path, headers=traceparent(trace_id))
        assert "traceparent" not in resp.headers, path
    assert of_trace(exporter, trace_id) == []


def test_tracing_off_starts_nothing() -> None:
    """Off (the default), every helper hands back the one shared no-op: no span objects."""
    off = build_tracing(TracingSettings())
    assert not off.on and off.provider is None
    assert off.server_span("x", traceparent()) is UNTRACED
    assert off.span("x") is UNTRACED
    assert off.queue_wait(3) is None and off.current() is None
    assert build_tracing(TracingSettings(traces_exporter="otlp", sdk_disabled=True)).on is False


def test_settings_follow_the_otel_specification() -> None:
    s = TracingSettings(exporter_otlp_endpoint="http://collector:4318/")
    assert s.traces_endpoint() == "http://collector:4318/v1/traces"
    full = TracingSettings(exporter_otlp_traces_endpoint="http://c:4318/custom")
    assert full.traces_endpoint() == "http://c:4318/custom"
    assert TracingSettings(traces_exporter="otlp, console").exporters == {"otlp", "console"}
    assert TracingSettings(resource_attributes="k8s.pod.name=p-1,a=b%20c").resource() == {
        "k8s.pod.name": "p-1",
        "a": "b c",
        "service.name": "sentiment-predictor",
    }
    for bad in (
        {"traces_exporter": "jaeger"},
        {"traces_sampler": "sometimes"},
        {"exporter_otlp_protocol": "grpc"},
    ):
        with pytest.raises(ValueError, match=r"jaeger|sometimes|http/protobuf"):
            TracingSettings(**bad)  # type: ignore[arg-type]


def test_the_default_sampler_follows_the_caller_and_samples_a_ratio_of_roots() -> None:
    tracing = build_tracing(TracingSettings(traces_exporter="console"))
    sampler = tracing.provider.sampler
    assert "ParentBased" in sampler.get_description()
    assert "0.1" in sampler.get_description()
    tracing.provider.shutdown()


@in_module_loop
@pytest.mark.parametrize("client_header", [True, False])
async def test_a_request_without_traceparent_starts_its_own_trace(
    app: InProcess, client_header: bool
) -> None:
    """Ratio 0 for roots: a fresh trace id answered unsampled; a caller's sampled one kept."""
    resp = await predict(app, "root", CALLER_TRACE if client_header else None)
    _, trace_id, _, flags = resp.headers["traceparent"].split("-")
    assert (trace_id == CALLER_TRACE) is client_header
    assert int(flags, 16) & 1 == client_header  # the sampled bit (02 is W3C's "random")
