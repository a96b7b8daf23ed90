"""Feature-store series on the default registry (served by KServe's /metrics).

Alerts and dashboards depend on these exact names and labels.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# A Redis round trip on loopback is ~0.1-1 ms; time-outs sit at hundreds of ms.
LOOKUP_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

CACHE_LOOKUPS = Counter(
    "predictor_cache_lookups_total",
    "Prediction cache lookups per text: hit, miss, or error (backend failed or skipped "
    "by the open circuit breaker).",
    ["model", "version", "result"],
)
CACHE_LOOKUP_LATENCY = Histogram(
    "predictor_cache_lookup_duration_seconds",
    "One batched cache lookup (one round trip for all texts of a request).",
    ["model", "version"],
    buckets=LOOKUP_BUCKETS,
)
CACHE_WRITE_ERRORS = Counter(
    "predictor_cache_write_errors_total",
    "Write-behind entries lost: the backend failed or the write queue was full "
    '(version="" for fetched tweets, which belong to no model version).',
    ["model", "version"],
)
FEATURESTORE_UP = Gauge(
    "predictor_featurestore_up",
    "1 when the feature-store backend answered its last call or PING, else 0.",
    ["backend"],
)
