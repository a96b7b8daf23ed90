"""OpenTelemetry traces of one request: the edge, decode, the cache, the queue, the batch it
rode in, encode and the write-behind after it.

Configured the OpenTelemetry way (`OTEL_*`, read once by `TracingSettings` in the
composition root), off by default. Off, `Tracing.off()` starts no span at all: every
helper returns one shared no-op context manager, so a request pays a few attribute
lookups. On, a child span is only started under a recording parent (an unsampled request
costs its edge span and nothing more), and the batch and flush spans, which serve many
requests, hang under the first sampled one and link to all of them.

No text content goes on a span unless `PREDICTOR_TRACE_TEXT` says so: traces often leave
the cluster (a SaaS backend) where predictions and stored texts never do.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, Status
from opentelemetry.trace import StatusCode as OtelStatus
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from predictor.settings_base import PredictorSettings

log = logging.getLogger(__name__)

OTEL_PREFIX = "OTEL_"
TRACER_NAME = "predictor"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
# The OpenTelemetry names of the samplers `OTEL_TRACES_SAMPLER` takes.
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
EXPORTERS = ("none", "otlp", "console")
_PROPAGATOR = TraceContextTextMapPropagator()


class TracingSettings(PredictorSettings):
    """The standard OpenTelemetry SDK variables this process honours (`OTEL_*`), plus
    `PREDICTOR_TRACE_TEXT`; only OTLP over HTTP/protobuf is exported."""

    model_config = SettingsConfigDict(
        env_prefix=OTEL_PREFIX,
        env_file=".env",
        extra="ignore",
        protected_namespaces=(),
        populate_by_name=True,  # `trace_text=` in code, `PREDICTOR_TRACE_TEXT` in the env
    )

    sdk_disabled: bool = Field(
        False,
        description="`true` turns tracing off whatever the exporter says (the SDK's own switch).",
    )
    traces_exporter: str = Field(
        "none",
        description="`none` (tracing off, no span is started), `otlp` (OTLP/HTTP protobuf to "
        "the endpoint below) or `console` (spans as JSON on stdout, for a laptop); a comma "
        "list sends to both. The SDK's default is `otlp`; here tracing is opt-in.",
    )
    exporter_otlp_endpoint: str = Field(
        "http://localhost:4318",
        description="Base URL of the collector's OTLP/HTTP receiver; `/v1/traces` is appended.",
    )
    exporter_otlp_traces_endpoint: str | None = Field(
        None, description="Full URL for traces, used as given; wins over the base URL."
    )
    exporter_otlp_protocol: str = Field(
        "http/protobuf",
        description="Only `http/protobuf` (port 4318); a collector's gRPC receiver (4317) "
        "is refused at start rather than silently unreachable.",
    )
    exporter_otlp_headers: SecretStr | None = Field(
        None,
        description="Headers on every export, `key=value,key2=value2` (a backend's API "
        "key): also read from the secrets directory, as a file of this name.",
    )
    exporter_otlp_compression: Literal["none", "gzip"] = Field(
        "none", description="`gzip` compresses each export (less egress, a little CPU)."
    )
    exporter_otlp_timeout: int = Field(10000, gt=0, description="Milliseconds one export may take.")
    traces_sampler: str = Field(
        "parentbased_traceidratio",
        description="One of always_on, always_off, traceidratio, parentbased_always_on, "
        "parentbased_always_off, parentbased_traceidratio. Parent-based follows the "
        "caller's sampled flag (the mesh or gateway decided once for the whole trace); "
        "the ratio applies to requests that arrive without one.",
    )
    traces_sampler_arg: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="The ratio of the `traceidratio` samplers. The SDK's default is 1.0; "
        "0.1 keeps the exporter's work on a CPU pod small while a slow bucket still "
        "has a trace to link to within seconds at serving rates.",
    )
    service_name: str = Field("sentiment-predictor", description="`service.name` of every span.")
    resource_attributes: str | None = Field(
        None,
        description="More resource attributes, `key=value,...` (e.g. `k8s.pod.name`, "
        "`k8s.namespace.name` from the downward API); `service.name` is the setting above.",
    )
    bsp_schedule_delay: int = Field(
        5000, gt=0, description="Milliseconds between two exports of ended spans."
    )
    bsp_max_queue_size: int = Field(
        2048,
        gt=0,
        description="Ended spans kept for export; more are dropped (counted "
        "by the SDK's log), never blocking a request.",
    )
    bsp_max_export_batch_size: int = Field(
        512, gt=0, description="Most spans in one export request."
    )
    trace_text: bool = Field(
        False,
        validation_alias="PREDICTOR_TRACE_TEXT",
        description="Put the texts (cut to the character cap) on the classify span. Off: "
        "no span carries any of a text's content, only counts and lengths.",
    )

    @field_validator("traces_exporter")
    @classmethod
    def _known_exporters(cls, value: str) -> str:
        names = [n.strip().lower() for n in value.split(",") if n.strip()]
        unknown = sorted(set(names) - set(EXPORTERS))
        if unknown:
            raise ValueError(f"unknown trace exporter(s) {unknown}; use one of {EXPORTERS}")
        return ",".join(names) or "none"

    @field_validator("traces_sampler")
    @classmethod
    def _known_sampler(cls, value: str) -> str:
        if value.strip().lower() not in SAMPLERS:
            raise ValueError(f"unknown sampler {value!r}; use one of {SAMPLERS}")
        return value.strip().lower()

    @field_validator("exporter_otlp_protocol")
    @classmethod
    def _http_only(cls, value: str) -> str:
        if value != "http/protobuf":
            raise ValueError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={value!r}: this image exports OTLP over HTTP "
                "only; use http/protobuf and the collector's port 4318"
            )
        return value

    @property
    def exporters(self) -> set[str]:
        """The exporters to build; empty when tracing is off."""
        if self.sdk_disabled:
            return set()
        return set(self.traces_exporter.split(",")) - {"none"}

    def traces_endpoint(self) -> str:
        """The URL exports go to, as the OTLP exporter specification derives it."""
        if self.exporter_otlp_traces_endpoint:
            return self.exporter_otlp_traces_endpoint
        return self.exporter_otlp_endpoint.rstrip("/") + "/v1/traces"

    def headers(self) -> dict[str, str]:
        raw = self.exporter_otlp_headers.get_secret_value() if self.exporter_otlp_headers else ""
        return _pairs(raw)

    def resource(self) -> dict[str, str]:
        return {**_pairs(self.resource_attributes or ""), "service.name": self.service_name}


def _pairs(raw: str) -> dict[str, str]:
    """`k=v,k2=v2` (the W3C baggage form of OTEL_RESOURCE_ATTRIBUTES and _HEADERS)."""
    from urllib.parse import unquote

    out: dict[str, str] = {}
    for part in raw.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            out[unquote(key.strip())] = unquote(value.strip())
    return out


class _Off(contextlib.AbstractContextManager[Span]):
    """The one context manager every helper returns when nothing is traced: no allocation."""

    def __enter__(self) -> Span:
        return trace.INVALID_SPAN

    def __exit__(self, *_: object) -> None:
        return None


UNTRACED = _Off()  # what every helper returns when nothing is traced


def recording(span: Span) -> bool:
    """Whether attributes set on `span` go anywhere (callers skip computing them if not)."""
    return span.is_recording()


def sampled_context(span: Span) -> SpanContext | None:
    ctx = span.get_span_context()
    return ctx if ctx.trace_flags.sampled else None


class QueueWait:
    """One request's wait in the batcher queue, as a span that ends when its last text
    starts a forward pass and links to every batch that carried its texts."""

    __slots__ = ("left", "parent", "span")

    def __init__(self, span: Span, parent: SpanContext, texts: int) -> None:
        self.span = span
        self.parent = parent  # where a batch span hangs when this request is its first
        self.left = texts

    def rode(self, batch: SpanContext | None, texts: int) -> None:
        if batch is not None:
            self.span.add_link(batch)
        self.left -= texts
        if self.left <= 0:
            self.span.end()

    def end(self, dropped: int = 0) -> None:
        """At the request's end: a wait that never reached the model ends here."""
        if self.left > 0:
            self.span.set_attribute("predictor.queue.dropped_texts", dropped or self.left)
            self.left = 0
            self.span.end()


class Tracing:
    """The tracer every part of a request uses, built once by the composition root."""

    def __init__(
        self, provider: Any = None, trace_text: bool = False, tracer: trace.Tracer | None = None
    ) -> None:
        """`provider` is an SDK TracerProvider (None: off); `tracer` defaults to its own."""
        self.provider = provider
        self.on = provider is not None
        self.trace_text = trace_text and self.on
        self.tracer: trace.Tracer = tracer or (
            provider.get_tracer(TRACER_NAME) if provider is not None else trace.NoOpTracer()
        )

    @classmethod
    def off(cls) -> Tracing:
        return cls()

    # --- propagation -----------------------------------------------------
    def server_span(
        self,
        name: str,
        carrier: Mapping[str, str],
        kind: SpanKind = SpanKind.SERVER,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> contextlib.AbstractContextManager[Span]:
        """The edge span, child of the caller's W3C context in `carrier`, made current."""
        if not self.on:
            return UNTRACED
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        return self.tracer.start_as_current_span(
            name,
            context=parent,
            kind=kind,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )

    @staticmethod
    def response_headers(span: Span) -> list[tuple[str, str]]:
        """`traceparent` (and `tracestate`) of `span`, for the response."""
        if not span.get_span_context().is_valid:
            return []
        out: dict[str, str] = {}
        _PROPAGATOR.inject(out, trace.set_span_in_context(span))
        return list(out.items())

    # --- spans inside a request ---------------------------------------------
    def span(
        self, name: str, attributes: Mapping[str, AttributeValue] | None = None
    ) -> contextlib.AbstractContextManager[Span]:
        """A child of the current span, made current; nothing when that one does not record
        (with any standard sampler its children would not be sampled either)."""
        if not self.on or not trace.get_current_span().is_recording():
            return UNTRACED
        return self.tracer.start_as_current_span(name, attributes=attributes)

    def queue_wait(self, texts: int) -> QueueWait | None:
        """The queue span of the current request, or None when it does not record."""
        if not self.on:
            return None
        current = trace.get_current_span()
        if not current.is_recording():
            return None
        span = self.tracer.start_span(
            "predictor.queue", attributes={"predictor.queue.texts": texts}
        )
        return QueueWait(span, current.get_span_context(), texts)

    def current(self) -> SpanContext | None:
        """The current span's context when it records: what later work links back to."""
        if not self.on:
            return None
        span = trace.get_current_span()
        return span.get_span_context() if span.is_recording() else None

    @contextlib.contextmanager
    def fan_in(
        self,
        name: str,
        parents: Sequence[SpanContext],
        links: Iterable[SpanContext],
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> Iterator[Span]:
        """A span of work done for many requests (a batch, a flush): under the first of
        `parents`, so it is sampled when one of them is and sits in that request's trace,
        linked to every one of `links`. Made current, so its own children nest."""
        if not self.on or not parents:
            yield trace.INVALID_SPAN
            return
        parent = trace.set_span_in_context(NonRecordingSpan(parents[0]))
        unique = list({(c.trace_id, c.span_id): c for c in links}.values())
        with self.tracer.start_as_current_span(
            name,
            context=parent,
            attributes=attributes,
            links=[Link(ctx) for ctx in unique],
            record_exception=False,
        ) as span:
            yield span

    # --- life cycle ---------------------------------------------------------
    async def close(self, timeout_s: float) -> None:
        """Export what is left, for at most `timeout_s` (a collector that is down must not
        hold up the pod's exit): the SDK's shutdown on a daemon thread, awaited that long."""
        if self.provider is None:
            return
        import asyncio

        done = threading.Event()

        def shutdown() -> None:
            try:
                self.provider.shutdown()
            finally:
                done.set()

        threading.Thread(target=shutdown, name="otel-shutdown", daemon=True).start()
        await asyncio.get_running_loop().run_in_executor(None, done.wait, max(timeout_s, 0.1))
        if not done.is_set():
            log.warning("tracing: spans not exported within %.1f s of the drain", timeout_s)


def error(span: Span, message: str) -> None:
    """Mark `span` failed (only for answers that are the server's fault: 5xx)."""
    span.set_status(Status(OtelStatus.ERROR, message))


def exemplar(span: Span) -> dict[str, str] | None:
    """A Prometheus exemplar naming `span`'s trace, when that trace is kept (sampled)."""
    ctx = span.get_span_context()
    if not ctx.trace_flags.sampled:
        return None
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


def build_tracing(settings: TracingSettings, exporter: Any = None) -> Tracing:
    """The tracer provider the settings ask for (or around `exporter`, for tests), with a
    BatchSpanProcessor, or `Tracing.off()`. Every SDK knob is passed explicitly, so what the
    SDK would read from the environment on its own is what these settings say."""
    names = settings.exporters
    if exporter is None and not names:
        return Tracing.off()
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )
    from opentelemetry.sdk.version import __version__ as sdk_version

    resource = Resource(
        {
            "telemetry.sdk.language": "python",
            "telemetry.sdk.name": "opentelemetry",
            "telemetry.sdk.version": sdk_version,
            **settings.resource(),
        }
    )
    provider = TracerProvider(
        sampler=_sampler(settings.traces_sampler, settings.traces_sampler_arg),
        resource=resource,
        shutdown_on_exit=False,  # Tracing.close, bounded, in the drain
    )
    if exporter is not None:  # a test's in-memory exporter: spans readable at once
        provider.add_span_processor(SimpleSpanProcessor(exporter))

    def batched(span_exporter: Any) -> BatchSpanProcessor:
        return BatchSpanProcessor(
            span_exporter,
            max_queue_size=settings.bsp_max_queue_size,
            schedule_delay_millis=settings.bsp_schedule_delay,
            max_export_batch_size=settings.bsp_max_export_batch_size,
            export_timeout_millis=settings.exporter_otlp_timeout,
        )

    if "otlp" in names:
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        otlp = OTLPSpanExporter(
            endpoint=settings.traces_endpoint(),
            headers=settings.headers(),
            timeout=settings.exporter_otlp_timeout / 1000,
            compression=Compression(settings.exporter_otlp_compression),
        )
        provider.add_span_processor(batched(otlp))
        log.info(
            "tracing: OTLP/HTTP to %s, sampler %s", settings.traces_endpoint(), _describe(settings)
        )
    if "console" in names:
        provider.add_span_processor(batched(ConsoleSpanExporter()))
    return Tracing(provider, settings.trace_text)


def _describe(settings: TracingSettings) -> str:
    if "traceidratio" in settings.traces_sampler:
        return f"{settings.traces_sampler} {settings.traces_sampler_arg:g}"
    return settings.traces_sampler


def _sampler(name: str, arg: float) -> Any:
    from opentelemetry.sdk.trace import sampling

    root = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(arg),
    }
    if name.startswith("parentbased_"):
        return sampling.ParentBased(root[name.removeprefix("parentbased_")])
    return root[name]
