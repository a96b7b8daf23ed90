"""A Prometheus HTTP API client for instant queries: one place that speaks PromQL over HTTP.

Drift and the canary gates both read Prometheus rather than a pod's /metrics:
Prometheus sums every pod of a version, gives a time window through `increase()`
and `rate()`, and keeps the counts of pods that restarted or scaled to zero.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import httpx


class PromError(RuntimeError):
    """Prometheus could not be reached or refused the query."""


def selector(**labels: str) -> str:
    """`{a="x",b="y"}`; JSON string escaping is valid PromQL string escaping."""
    return "{" + ",".join(f"{k}={json.dumps(v)}" for k, v in labels.items()) + "}"


@dataclass(frozen=True)
class Prometheus:
    url: str
    timeout_s: float = 10.0

    def vector(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """Instant query: (labels, value) for each series; NaN values are dropped."""
        try:
            resp = httpx.get(
                f"{self.url.rstrip('/')}/api/v1/query",
                params={"query": expr},
                timeout=self.timeout_s,
            )
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise PromError(f"Prometheus at {self.url} did not answer {expr!r}: {exc}") from exc
        if body.get("status") != "success":
            raise PromError(f"Prometheus refused {expr!r}: {body.get('error')}")
        out = []
        for series in body["data"]["result"]:
            value = float(series["value"][1])
            if not math.isnan(value):
                out.append((dict(series["metric"]), value))
        return out

    def scalar(self, expr: str) -> float | None:
        """The value of a query expected to give one series; None when it gives none."""
        result = self.vector(expr)
        if len(result) > 1:
            raise PromError(f"{expr!r} gave {len(result)} series, expected one")
        return result[0][1] if result else None
