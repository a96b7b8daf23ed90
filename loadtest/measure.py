"""One measured point: a client, a bounded run, and the server's cache counters around it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from loadtest.clients import Wire, make_client
from loadtest.promstats import cache_lookups, lookup_delta
from loadtest.runner import closed_loop, open_loop
from loadtest.stats import Summary, summarize

OPEN_LOOP_CONNECTIONS = 256


def _lookups(url: str) -> dict[str, float] | None:
    try:
        return cache_lookups(url)
    except httpx.HTTPError:
        return None  # no /metrics (e.g. a foreign server): no cache figure


async def measure(
    wire: Wire,
    workload: Iterator[str],
    *,
    url: str,
    grpc_target: str,
    concurrency: int | None = None,
    rate: float | None = None,
    max_requests: int,
    max_seconds: float,
    texts_per_request: int = 1,
    label: str = "",
    model: str = "sentiment",
    timeout: float = 30.0,
    allow_remote: bool = False,
    progress: bool = True,
) -> Summary:
    """Closed loop when `concurrency` is given, open loop at `rate` otherwise."""
    if (concurrency is None) == (rate is None):
        raise ValueError("give exactly one of concurrency (closed loop) or rate (open loop)")
    client = make_client(
        wire,
        url=url,
        grpc_target=grpc_target,
        model=model,
        timeout=timeout,
        concurrency=concurrency or OPEN_LOOP_CONNECTIONS,
        allow_remote=allow_remote,
    )
    before = _lookups(url)
    try:
        bounds: dict[str, Any] = {
            "max_requests": max_requests, "max_seconds": max_seconds,
            "texts_per_request": texts_per_request, "progress": progress,
        }  # fmt: skip
        if concurrency is not None:
            label = label or f"{wire} c={concurrency}"
            result = await closed_loop(
                client, workload, concurrency=concurrency, label=label, **bounds
            )
        else:
            assert rate is not None
            label = label or f"{wire} {rate:g}/s"
            result = await open_loop(client, workload, rate=rate, label=label, **bounds)
    finally:
        await client.aclose()
    return summarize(result, lookup_delta(before, _lookups(url)))
