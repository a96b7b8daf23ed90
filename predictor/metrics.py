"""The predictor's Prometheus series, defined once on the default registry.

KServe's /metrics serves the default registry, so these appear beside its own
stage histograms (`request_{preprocess,predict,postprocess}_seconds`) and
prometheus-client's process and platform collectors (`process_*`, `python_*`).
Units are in the names, counters end in `_total`, times are in seconds.

Per-model series carry the model's `version`, so a canary and the stable model
can be told apart in one query. Callers name only the model: the version is
filled in from the model that `model_loaded` registered, and request paths that
name no loaded model are counted under `model="unknown"`, so a client cannot
mint a new series per made-up model name.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

# Serving is milliseconds-scale: fine steps from 0.5 ms to 250 ms (where the
# latency alert threshold and most quantiles fall), coarse ones up to 10 s.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.035, 0.05,
    0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# A text that finds the engine idle waits microseconds; under load, a batch or two.
QUEUE_BUCKETS = (0.0001, 0.00025, *LATENCY_BUCKETS)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Top-class probability bins; the model card's drift reference uses the same edges
# (training/build.py), so live and reference histograms compare bin for bin.
SCORE_BUCKETS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)

UNKNOWN_MODEL = "unknown"

_lock = threading.Lock()
_info: dict[str, tuple[str, str, str, str]] = {}

M = TypeVar("M", bound=MetricWrapperBase)


def model_loaded(model: str, version: str, device: str, precision: str) -> None:
    """Record the loaded model in its info gauge (one series per model, never a stale one)."""
    labels = (model, version, device, precision)
    with _lock:
        previous = _info.get(model)
        _info[model] = labels
    if previous is not None and previous != labels:
        MODEL_INFO.remove(*previous)
    MODEL_INFO.labels(*labels).set(1)


def series_labels(versions: Mapping[str, str | None], model: str) -> tuple[str, str]:
    """(model, version) for a request naming `model`, from the server's own map of what it
    serves: a name it does not serve folds into one `unknown` series (clients cannot grow the
    label set), a model still loading has version "" (its start-up 503s are its own)."""
    if model not in versions:
        return UNKNOWN_MODEL, ""
    return model, versions[model] or ""


class ModelSeries(Generic[M]):
    """A metric whose first labels are `model, version`, always given by the caller: the
    version comes from whoever holds it (the model, the batcher built for it at load, the
    edge through the server's version map), never from a module-global."""

    def __init__(self, metric: M) -> None:
        self.metric = metric

    def labels(self, model: str, version: str, *rest: str) -> M:
        return self.metric.labels(model, version, *rest)


REQUESTS = ModelSeries(
    Counter(
        "predictor_requests_total",
        "Inference requests answered, by protocol (v1, v2, grpc) and status code.",
        ["model", "version", "protocol", "code"],
    )
)
REQUEST_LATENCY = ModelSeries(
    Histogram(
        "predictor_request_duration_seconds",
        "End-to-end inference request latency inside the server, errors included.",
        ["model", "version", "protocol"],
        buckets=LATENCY_BUCKETS,
    )
)
INFLIGHT = ModelSeries(
    Gauge(
        "predictor_inflight_requests",
        "Inference requests being handled now.",
        ["model", "version"],
    )
)
QUEUE_WAIT = ModelSeries(
    Histogram(
        "predictor_queue_wait_seconds",
        "Time a text waited in the batcher before its forward pass started.",
        ["model", "version"],
        buckets=QUEUE_BUCKETS,
    )
)
BATCH_SIZE = ModelSeries(
    Histogram(
        "predictor_batch_size",
        "Texts per forward pass.",
        ["model", "version"],
        buckets=BATCH_BUCKETS,
    )
)
INFERENCE_LATENCY = ModelSeries(
    Histogram(
        "predictor_inference_duration_seconds",
        "Tokenise + forward time of one batch on the engine thread.",
        ["model", "version"],
        buckets=LATENCY_BUCKETS,
    )
)
TRUNCATED = ModelSeries(
    Counter(
        "predictor_truncated_texts_total",
        "Texts cut to the character cap or the model's maximum sequence length.",
        ["model", "version"],
    )
)
SHED = ModelSeries(
    Counter(
        "predictor_shed_requests_total",
        "Requests refused with 503 because the batch queue was full.",
        ["model", "version"],
    )
)
DROPPED_TEXTS = ModelSeries(
    Counter(
        "predictor_dropped_texts_total",
        "Texts taken off the queue before their forward pass, by reason: `cancelled` (the "
        "client disconnected or cancelled) or `expired` (the request's deadline passed).",
        ["model", "version", "reason"],
    )
)
PREDICTIONS = ModelSeries(
    Counter(
        "predictor_predictions_total",
        "Predictions answered, by predicted label (cache hits included): the drift signal.",
        ["model", "version", "label"],
    )
)
PREDICTION_SCORE = ModelSeries(
    Histogram(
        "predictor_prediction_score",
        "Probability of the predicted label, per prediction (cache hits included).",
        ["model", "version"],
        buckets=SCORE_BUCKETS,
    )
)
# `:explain` has its own series: an explanation costs a forward pass per word, and counted
# with predictions it would skew request rates, latency and the drift signal.
EXPLAIN_REQUESTS = ModelSeries(
    Counter(
        "predictor_explain_requests_total",
        "`:explain` requests answered, by status code.",
        ["model", "version", "code"],
    )
)
EXPLAIN_LATENCY = ModelSeries(
    Histogram(
        "predictor_explain_request_duration_seconds",
        "End-to-end `:explain` request latency inside the server, errors included.",
        ["model", "version"],
        buckets=LATENCY_BUCKETS,
    )
)
EXPLAINED_WORDS = ModelSeries(
    Histogram(
        "predictor_explained_words",
        "Words per explained text (each costs one occluded text through the batcher).",
        ["model", "version"],
        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    )
)
MODEL_INFO = Gauge(
    "predictor_model_info",
    "The loaded model (value 1): name, version, device and precision as labels.",
    ["model", "version", "device", "precision"],
)
READY = Gauge("predictor_model_ready", "1 when the model is loaded and warm.", ["model"])
