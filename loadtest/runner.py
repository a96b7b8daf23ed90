"""Bounded load: closed loop at a fixed concurrency, open loop with Poisson arrivals.

Both stop at whichever comes first, a request count or a time limit, and
never leave a request behind. The closed loop measures capacity (each worker
sends when its last answer arrived); the open loop measures latency at an
offered rate, timing each request from when it was *due*, so a server or a
generator that falls behind shows up as latency instead of hiding it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from loadtest.clients import OK_STATUSES, Client

CLIENT_OVERLOAD = "client-overload"  # open loop: arrival dropped, too many in flight


@dataclass
class RunResult:
    """Everything one run observed; `loadtest.stats` turns it into figures."""

    label: str
    texts_per_request: int
    latencies_s: list[float] = field(default_factory=list)  # successful requests only
    statuses: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0
    offered_rate: float | None = None
    concurrency: int | None = None

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if s in OK_STATUSES)

    @property
    def errors(self) -> dict[str, int]:
        return {s: n for s, n in sorted(self.statuses.items()) if s not in OK_STATUSES}

    def record(self, status: str, latency_s: float | None) -> None:
        self.statuses[status] += 1
        if status in OK_STATUSES and latency_s is not None:
            self.latencies_s.append(latency_s)


def _check_bounds(max_requests: int, max_seconds: float) -> None:
    if max_requests < 1 or max_seconds <= 0:
        raise ValueError("a run needs max_requests >= 1 and max_seconds > 0")


def _take(workload: Iterator[str], n: int) -> list[str]:
    return [next(workload) for _ in range(n)]


Send = Callable[[int], Awaitable[str]]


async def drive(
    send: Send,
    *,
    concurrency: int,
    max_requests: int | None = None,
    max_seconds: float | None = None,
    stop: asyncio.Event | None = None,
    texts_per_request: int = 1,
    label: str = "",
    progress: bool = False,
) -> RunResult:
    """The one closed loop every load generator here uses (the benchmark, the cache-latency
    check, the reliability and failover tests): `concurrency` workers, each calling
    `send(n)` for the next request number n as soon as its last call returned, until
    `max_requests` calls, `max_seconds` or `stop`, whichever comes first. `send` returns
    the request's status (`200`, `grpc:OK`, an exception's name ...)."""
    if max_requests is None and max_seconds is None and stop is None:
        raise ValueError("a run needs a bound: max_requests, max_seconds or stop")
    _check_bounds(max_requests or 1, max_seconds or 1.0)
    result = RunResult(label or f"closed c={concurrency}", texts_per_request)
    result.concurrency = concurrency
    issued = 0
    limit = max_requests if max_requests is not None else sys.maxsize
    bar = tqdm(total=max_requests, desc=result.label, unit="req", disable=not progress, leave=False)
    start, cpu0 = time.perf_counter(), time.process_time()
    deadline = start + max_seconds if max_seconds is not None else float("inf")

    async def worker() -> None:
        nonlocal issued
        while issued < limit and time.perf_counter() < deadline:
            if stop is not None and stop.is_set():
                return
            n, issued = issued, issued + 1
            t0 = time.perf_counter()
            status = await send(n)
            result.record(status, time.perf_counter() - t0)
            bar.update()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed_s = time.perf_counter() - start
    result.client_cpu_s = time.process_time() - cpu0
    bar.close()
    return result


async def closed_loop(
    client: Client,
    workload: Iterator[str],
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    texts_per_request: int = 1,
    label: str = "",
    progress: bool = True,
) -> RunResult:
    """`concurrency` workers, each sending its next request when the last one answered."""
    _check_bounds(max_requests, max_seconds)

    async def send(_: int) -> str:
        return await client.send(_take(workload, texts_per_request))

    return await drive(
        send,
        concurrency=concurrency,
        max_requests=max_requests,
        max_seconds=max_seconds,
        texts_per_request=texts_per_request,
        label=label,
        progress=progress,
    )


async def open_loop(
    client: Client,
    workload: Iterator[str],
    *,
    rate: float,
    max_requests: int,
    max_seconds: float,
    texts_per_request: int = 1,
    max_in_flight: int = 1024,
    seed: int = 0,
    label: str = "",
    progress: bool = True,
) -> RunResult:
    """Requests arrive as a Poisson process at `rate` per second, whatever the answers do.

    More than `max_in_flight` outstanding requests means the target cannot keep
    up; further arrivals are counted as `client-overload` errors rather than
    piling up without bound.
    """
    _check_bounds(max_requests, max_seconds)
    if rate <= 0:
        raise ValueError("rate must be > 0")
    result = RunResult(label or f"open {rate:g}/s", texts_per_request, offered_rate=rate)
    rng = np.random.default_rng(seed)
    in_flight: set[asyncio.Task[None]] = set()
    bar = tqdm(total=max_requests, desc=result.label, unit="req", disable=not progress, leave=False)

    async def one(texts: list[str], due: float) -> None:
        status = await client.send(texts)
        result.record(status, time.perf_counter() - due)
        bar.update()

    start, cpu0 = time.perf_counter(), time.process_time()
    deadline = start + max_seconds
    due = start
    for _ in range(max_requests):
        due += float(rng.exponential(1.0 / rate))
        if due >= deadline:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= max_in_flight:
            result.record(CLIENT_OVERLOAD, None)
            bar.update()
            continue
        task = asyncio.create_task(one(_take(workload, texts_per_request), due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.gather(*in_flight)
    result.elapsed_s = time.perf_counter() - start
    result.client_cpu_s = time.process_time() - cpu0
    bar.close()
    return result
