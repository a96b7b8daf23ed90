"""Measure a cache hit against a miss through a real predictor, and a Redis outage.

    .venv/bin/python -m loadtest.cache_latency \
        --model-dir models/sentiment --clients 16 --requests 50

Starts redis-server and the predictor on free ports, then with N concurrent
clients (one text per request): every request a miss (unique texts), the same
texts again (every request a hit), and the same load with Redis stopped, then
restarted. Prints p50/p99 per phase and what the errors were; `--json` writes
them too. Not a test: it measures, so it is not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from harness.scrape import sample_sum
from harness.servers import PredictorProcess, RedisServer
from loadtest.runner import drive
from predictor import DEFAULT_MODEL_NAME

PREDICT = f"/v1/models/{DEFAULT_MODEL_NAME}:predict"

SENTENCE = (
    "the service was slow but the staff were friendly and the coffee was great today "
    "never again waiting an hour for a bus that does not come honestly what a day"
)
WORDS = SENTENCE.split(" ")


def tweet(n: int) -> str:
    """A distinct tweet-length text per n (so misses are real misses)."""
    words = [WORDS[(n * 7 + i * 3) % len(WORDS)] for i in range(20)]
    return f"{' '.join(words)} #{n}"


async def run_phase(
    url: str, texts: list[str], clients: int, label: str
) -> tuple[list[float], Counter[int]]:
    """Send each text once as its own request from `clients` concurrent workers (the loop is
    loadtest.runner.drive)."""
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def send(n: int) -> str:
            start = time.perf_counter()
            try:
                resp = await client.post(PREDICT, json={"instances": [texts[n]]})
                codes[resp.status_code] += 1
            except httpx.HTTPError:
                codes[-1] += 1
            latencies.append(time.perf_counter() - start)
            return "200"

        await drive(send, concurrency=clients, max_requests=len(texts), label=label, progress=True)
    return latencies, codes


def summary(latencies: list[float], codes: Counter[int], seconds: float) -> dict[str, Any]:
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100)
    return {
        "requests": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(q[98], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "req_per_s": round(len(ms) / seconds, 1),
        "status": dict(codes),
    }


async def timed_phase(
    server: PredictorProcess, texts: list[str], clients: int, name: str
) -> dict[str, Any]:
    """One phase: client-side latency, the server's own mean, and what the cache counted."""
    series = ("predictor_request_duration_seconds_sum", "predictor_request_duration_seconds_count")
    results = ("hit", "miss", "error")
    cache_before = {
        r: sample_sum(server.url, "predictor_cache_lookups_total", result=r) for r in results
    }
    server_before = [sample_sum(server.url, m, protocol="v1") for m in series]
    start = time.perf_counter()
    lat, codes = await run_phase(server.url, texts, clients, name)
    out = summary(lat, codes, time.perf_counter() - start)
    seconds, count = (
        sample_sum(server.url, m, protocol="v1") - b
        for m, b in zip(series, server_before, strict=True)
    )
    out["server_mean_ms"] = round(seconds / count * 1000, 2) if count else None
    out["cache"] = {
        r: sample_sum(server.url, "predictor_cache_lookups_total", result=r) - v
        for r, v in cache_before.items()
    }
    return out


async def measure(
    server: PredictorProcess, redis: RedisServer, args: argparse.Namespace
) -> dict[str, Any]:
    texts = [tweet(i) for i in range(args.clients * args.requests)]
    warm = [tweet(-1 - i) for i in range(args.clients * 4)]
    await run_phase(server.url, warm, args.clients, "warm-up")
    out: dict[str, Any] = {"miss": await timed_phase(server, texts, args.clients, "miss")}
    await asyncio.sleep(1.0)  # let the write-behind land before the hit phase
    out["hit"] = await timed_phase(server, texts, args.clients, "hit")
    redis.stop()
    stopped = await timed_phase(server, texts, args.clients, "redis stopped")
    stopped["featurestore_up"] = sample_sum(
        server.url, "predictor_featurestore_up", backend="redis"
    )
    stopped["log_warnings"] = sum(
        "serving without it" in line for line in server.logs().splitlines()
    )
    out["redis_stopped"] = stopped
    redis.start()
    restarted = time.perf_counter()
    while sample_sum(server.url, "predictor_featurestore_up", backend="redis") != 1:
        await asyncio.sleep(0.05)
    out["recovery_s"] = round(time.perf_counter() - restarted, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models/sentiment"))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=50, help="Requests per client and phase.")
    parser.add_argument("--cpu-threads", default="0", help="PREDICTOR_CPU_THREADS (0: all cores).")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cache-latency-"))
    redis = RedisServer(tmp).start()
    env = {
        "PREDICTOR_REDIS_URL": redis.url(),
        "PREDICTOR_CPU_THREADS": args.cpu_threads,
        "PREDICTOR_ACCESS_LOG": "false",
        "PREDICTOR_HEALTH_INTERVAL_S": "0.5",
    }
    server = PredictorProcess(args.model_dir.resolve(), tmp / "predictor.log", env=env)
    try:
        server.start().wait_ready(120)
        results = asyncio.run(measure(server, redis, args))
    finally:
        server.stop()
        redis.stop()
    results["setup"] = {"model_dir": str(args.model_dir), "clients": args.clients}
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
