"""A server's own counters, read from its Prometheus /metrics page."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def _samples(url: str, timeout: float) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(f"{url.rstrip('/')}/metrics", timeout=timeout).text
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def read_counter(url: str, sample: str, by: str, timeout: float = 5.0) -> dict[str, float] | None:
    """Sum of one sample name per value of label `by`; None when the series is absent."""
    totals: dict[str, float] = {}
    for name, labels, value in _samples(url, timeout):
        if name == sample:
            key = labels.get(by, "")
            totals[key] = totals.get(key, 0.0) + value
    return totals or None


def sample_sum(url: str, sample: str, **labels: str) -> float:
    """Sum of the samples called `sample` whose labels include `labels` (0 when none)."""
    return sum(
        value
        for name, have, value in _samples(url, 5.0)
        if name == sample and all(have.get(k) == v for k, v in labels.items())
    )
