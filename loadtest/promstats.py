"""The predictor's own counters, read from its /metrics page around a run.

Only the cache lookups matter to the load generator: the hit ratio a run
achieved is the change in predictor_cache_lookups_total{result=hit|miss|error}
between before and after. A predictor without a feature store has no such
series; that reads as "no cache", not as an error.
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

CACHE_LOOKUPS = "predictor_cache_lookups_total"


def read_counter(url: str, sample: str, by: str, timeout: float = 5.0) -> dict[str, float] | None:
    """Sum of one sample name per value of label `by`; None when the series is absent."""
    text = httpx.get(f"{url.rstrip('/')}/metrics", timeout=timeout).text
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample:
                key = s.labels.get(by, "")
                totals[key] = totals.get(key, 0.0) + s.value
    return totals or None


def sample_sum(url: str, sample: str, **labels: str) -> float:
    """Sum of the samples called `sample` whose labels include `labels` (0 when none)."""
    text = httpx.get(f"{url.rstrip('/')}/metrics", timeout=5.0).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


def cache_lookups(url: str) -> dict[str, float] | None:
    """Cache lookups so far by result (hit, miss, error), or None without a cache."""
    return read_counter(url, CACHE_LOOKUPS, "result")


def lookup_delta(
    before: dict[str, float] | None, after: dict[str, float] | None
) -> dict[str, float] | None:
    """Lookups during a run; None when the predictor exposes no cache metric."""
    if after is None:
        return None
    before = before or {}
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def hit_ratio(delta: dict[str, float] | None) -> float | None:
    """hits / (hits + misses + errors), or None without a cache or without lookups."""
    if not delta:
        return None
    total = sum(delta.values())
    return delta.get("hit", 0.0) / total if total > 0 else None
