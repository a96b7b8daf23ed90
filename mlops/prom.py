"""A Prometheus HTTP API client for instant queries: one place that speaks PromQL over HTTP.

Drift and the canary gates both read Prometheus rather than a pod's /metrics:
Prometheus sums every pod of a version, gives a time window through `increase()`
and `rate()`, and keeps the counts of pods that restarted or scaled to zero.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass

import httpx


class PromError(RuntimeError):
    """Prometheus could not be reached or refused the query."""


# Prometheus's duration syntax: units largest first, each at most once (30m, 1h, 1h30m, 2d).
_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_UNIT_S = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def duration_seconds(text: str) -> float:
    """Seconds of a Prometheus duration; ValueError with the accepted shape otherwise."""
    m = _DURATION.fullmatch(text)
    if not text or m is None or not any(m.groups()):
        raise ValueError(f"{text!r} is not a Prometheus duration: a number and a unit "
                         "(ms, s, m, h, d, w, y), e.g. 30m, 1h, 1h30m, 2d")  # fmt: skip
    return sum(int(g) * u for g, u in zip(m.groups(), _UNIT_S, strict=True) if g)


def duration(text: str) -> str:
    """argparse type for a window: checked here, so `--window 1hour` is a usage error naming
    the flag rather than a query Prometheus refuses after the cycle has started."""
    try:
        if duration_seconds(text) <= 0:
            raise ValueError(f"{text!r}: the window must be longer than 0")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


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
