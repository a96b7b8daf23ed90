"""A small closed-loop load generator for the reliability checks: N clients, each sending
its next request as soon as the last one is answered, with every answer kept."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from loadtest.runner import drive
from tests.reliability.corpus import server_error

PREDICT = "/v1/models/sentiment:predict"


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    status = open(f"/proc/{pid}/status").read()  # noqa: SIM115 - /proc, read at once
    return int(status.split("VmRSS:")[1].split()[0]) * 1024


@dataclass
class Stats:
    """Every answer of one phase: status counts, transport failures, latencies."""

    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    bodies_503: list[bytes] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + sum(self.transport_errors.values())

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if server_error(s))

    def p99_ms(self) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def default_body(n: int) -> dict[str, object]:
    return {"instances": [f"load text {n % 500}: how is everyone today"]}


async def run_load(
    url: str,
    *,
    clients: int,
    requests: int | None = None,
    seconds: float | None = None,
    body: Callable[[int], object] = default_body,
    path: str = PREDICT,
    stop: asyncio.Event | None = None,
) -> Stats:
    """Run until `requests` are sent, `seconds` pass or `stop` is set, whichever first
    (the loop is loadtest.runner.drive; every answer is kept here, errors included)."""
    stats = Stats()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def send(n: int) -> str:
            start = time.perf_counter()
            try:
                resp = await http.post(path, json=body(n))
            except httpx.HTTPError as exc:
                stats.transport_errors[type(exc).__name__] += 1
                await asyncio.sleep(0.05)
                return type(exc).__name__
            stats.latencies.append(time.perf_counter() - start)
            stats.statuses[resp.status_code] += 1
            if resp.status_code == 503:
                stats.bodies_503.append(resp.content)
            return str(resp.status_code)

        await drive(
            send, concurrency=clients, max_requests=requests, max_seconds=seconds, stop=stop
        )
    return stats
