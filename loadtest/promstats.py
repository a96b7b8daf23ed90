"""The predictor's own counters, read from its /metrics page around a run.

Only the cache lookups matter to the load generator: the hit ratio a run
achieved is the change in predictor_cache_lookups_total{result=hit|miss|error}
between before and after. A predictor without a feature store has no such
series; that reads as "no cache", not as an error.
"""

from __future__ import annotations

from harness.scrape import read_counter

CACHE_LOOKUPS = "predictor_cache_lookups_total"


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
