"""The predictor's Prometheus series, defined once on the default registry.

KServe's /metrics serves the default registry, so these appear beside its own
latency histograms. Units are in the names, counters end in `_total`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Serving is milliseconds-scale: resolve 1 ms .. 10 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

REQUESTS = Counter(
    "predictor_requests_total",
    "Inference requests answered, by protocol and status code.",
    ["model", "protocol", "code"],
)
REQUEST_LATENCY = Histogram(
    "predictor_request_duration_seconds",
    "End-to-end inference request latency inside the server.",
    ["model", "protocol"],
    buckets=LATENCY_BUCKETS,
)
INFLIGHT = Gauge("predictor_inflight_requests", "Inference requests being handled now.", ["model"])
QUEUE_WAIT = Histogram(
    "predictor_queue_wait_seconds",
    "Time a text waited in the batcher before its forward pass started.",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "predictor_batch_size", "Texts per forward pass.", ["model"], buckets=BATCH_BUCKETS
)
INFERENCE_LATENCY = Histogram(
    "predictor_inference_duration_seconds",
    "Tokenise + forward time of one batch on the engine thread.",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
TRUNCATED = Counter(
    "predictor_truncated_texts_total",
    "Texts cut to the character cap or the model's maximum sequence length.",
    ["model"],
)
SHED = Counter(
    "predictor_shed_requests_total",
    "Requests refused with 503 because the batch queue was full.",
    ["model"],
)
MODEL_INFO = Gauge(
    "predictor_model_info",
    "The loaded model (value 1): name, version, device and precision as labels.",
    ["model", "version", "device", "precision"],
)
READY = Gauge("predictor_model_ready", "1 when the model is loaded and warm.", ["model"])
