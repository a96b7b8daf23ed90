"""From a RunResult to the figures people compare: throughput and latency percentiles."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from loadtest.promstats import hit_ratio
from loadtest.runner import RunResult


@dataclass(frozen=True)
class Summary:
    """One row of a results table; `as_dict` is the JSON form."""

    label: str
    requests: int
    ok: int
    errors: dict[str, int]
    elapsed_s: float
    requests_per_s: float
    texts_per_s: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    client_cpu_s: float
    concurrency: int | None = None
    offered_rate: float | None = None
    cache_lookups: dict[str, float] | None = None
    cache_hit_ratio: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(result: RunResult, cache_lookups: dict[str, float] | None = None) -> Summary:
    """Percentiles over successful requests; throughput counts successes only."""
    lat = np.asarray(result.latencies_s, dtype=np.float64) * 1000.0
    pct: list[float | None] = (
        [float(x) for x in np.percentile(lat, [50, 90, 99])] if lat.size else [None, None, None]
    )
    elapsed = max(result.elapsed_s, 1e-9)
    return Summary(
        label=result.label,
        requests=result.requests,
        ok=result.ok,
        errors=result.errors,
        elapsed_s=result.elapsed_s,
        requests_per_s=result.ok / elapsed,
        texts_per_s=result.ok * result.texts_per_request / elapsed,
        p50_ms=pct[0],
        p90_ms=pct[1],
        p99_ms=pct[2],
        max_ms=float(lat.max()) if lat.size else None,
        client_cpu_s=result.client_cpu_s,
        concurrency=result.concurrency,
        offered_rate=result.offered_rate,
        cache_lookups=cache_lookups,
        cache_hit_ratio=hit_ratio(cache_lookups),
    )
