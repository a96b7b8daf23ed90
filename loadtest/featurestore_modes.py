"""Hit-path throughput and latency of the predictor on each feature-store deployment, same run.

    .venv/bin/python -m loadtest.featurestore_modes [--model-dir models/sentiment] \
        [--clients 16] [--seconds 15] [--texts 256]

For each of sidecar-like (plain redis-server on loopback, no AUTH), standalone external
(AUTH + TLS, password from a secrets file as the chart mounts it), Sentinel (master, replica,
three sentinels) and Redis Cluster (three masters): start the deployment and one predictor
on it with the near cache off (every hit is a Redis round trip), warm `--texts` texts, then
run a bounded closed loop of `--clients` clients over them (after a short unmeasured one that
opens the connection pools). Reports requests/s, p50/p99,
the hit ratio, and Redis commands and read events (round trips) per request from INFO on
every node. A last row keeps the near cache on, for comparison. With `--rounds N` the modes
run interleaved N times and each figure is the median over rounds, so a neighbour's load on a
shared machine does not land on one mode only. Writes loadtest/results/featurestore_modes.json
and prints a markdown table. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
from tqdm import tqdm

from harness.process import REPO
from harness.redis_deployments import ClusterDeployment, SentinelDeployment
from harness.servers import PredictorProcess, RedisServer
from loadtest.cache_latency import tweet
from loadtest.clients import V1Client
from loadtest.promstats import cache_lookups, hit_ratio, lookup_delta
from loadtest.runner import closed_loop
from loadtest.stats import summarize

PASSWORD = "bench-featurestore-pw"
RESULTS = REPO / "loadtest" / "results" / "featurestore_modes.json"


@dataclass
class Deployment:
    """What a mode gives the predictor, and the data nodes to count commands on."""

    url: str
    nodes: list[RedisServer]
    secret: bool  # the password comes from the secrets file


@contextmanager
def deployment(mode: str, workdir: Path) -> Iterator[Deployment]:
    workdir.mkdir(parents=True, exist_ok=True)
    if mode in ("sidecar", "sidecar+near"):
        server = RedisServer(workdir).start()
        try:
            yield Deployment(server.url(), [server], secret=False)
        finally:
            server.stop()
    elif mode == "external":
        server = RedisServer(workdir, password=PASSWORD, tls=True).start()
        try:
            yield Deployment(server.url(password=""), [server], secret=True)
        finally:
            server.stop()
    elif mode == "sentinel":
        sentinel = SentinelDeployment(workdir, password=PASSWORD).start()
        try:
            yield Deployment(sentinel.url(password=""), [sentinel.master()], secret=True)
        finally:
            sentinel.stop()
    elif mode == "cluster":
        cluster = ClusterDeployment(workdir, password=PASSWORD).start()
        try:
            yield Deployment(cluster.url(password=""), cluster.nodes, secret=True)
        finally:
            cluster.stop()
    else:
        raise ValueError(f"unknown mode {mode!r}")


def node_counts(nodes: list[RedisServer], clients: dict[int, redis.Redis]) -> tuple[int, int]:
    """(commands, read events) summed over the data nodes, INFO itself excluded."""
    commands = reads = 0
    for n in nodes:
        c = clients.setdefault(n.port, n.client())
        reads += int(c.info("stats")["total_reads_processed"]) - 1
        stats = c.info("commandstats")
        reads -= 1  # the commandstats INFO of this snapshot
        commands += sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")
    return commands, reads


def warm(proc: PredictorProcess, texts: list[str], stored: Callable[[], int]) -> None:
    url = f"{proc.url}/v1/models/sentiment:predict"
    for start in range(0, len(texts), 32):
        chunk = texts[start : start + 32]
        resp = httpx.post(url, json={"instances": chunk}, timeout=60)
        resp.raise_for_status()
    deadline = time.monotonic() + 30
    while stored() < len(texts):
        if time.monotonic() > deadline:
            raise TimeoutError("write-behind never stored the warm-up texts")
        time.sleep(0.05)


async def measure(mode: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    texts = [tweet(n) for n in range(args.texts)]
    with deployment(mode, tmp / mode) as dep:
        secrets = tmp / mode / "secrets"
        secrets.mkdir(exist_ok=True)
        env = {"PREDICTOR_REDIS_URL": dep.url, "PREDICTOR_SECRETS_DIR": str(secrets)}
        if dep.secret:
            (secrets / "PREDICTOR_REDIS_PASSWORD").write_text(PASSWORD)
        if mode != "sidecar+near":
            env["PREDICTOR_NEAR_CACHE_ENTRIES"] = "0"
        proc = PredictorProcess(args.model_dir, tmp / mode / "predictor.log", env=env)
        clients: dict[int, redis.Redis] = {}
        client = V1Client(proc.url, "sentiment", args.clients, timeout=30, allow_remote=False)
        try:
            proc.start().wait_ready(120)
            warm(proc, texts, lambda: sum(n.client().dbsize() for n in dep.nodes))
            # open every pooled connection (TLS handshakes, cluster slot maps) before counting
            await closed_loop(
                client,
                itertools.cycle(texts),
                concurrency=args.clients,
                max_requests=args.max_requests,
                max_seconds=args.warmup_seconds,
                label=f"{mode} warm-up",
            )
            before_lookups = cache_lookups(proc.url)
            before = node_counts(dep.nodes, clients)
            result = await closed_loop(
                client,
                itertools.cycle(texts),
                concurrency=args.clients,
                max_requests=args.max_requests,
                max_seconds=args.seconds,
                label=mode,
            )
            after = node_counts(dep.nodes, clients)
            lookups = lookup_delta(before_lookups, cache_lookups(proc.url))
        finally:
            await client.aclose()
            proc.stop()
    s = summarize(result, lookups)
    n = max(result.requests, 1)
    return {
        "mode": mode,
        "requests": result.requests,
        "failed": sum(result.errors.values()),
        "requests_per_s": s.requests_per_s,
        "p50_ms": s.p50_ms,
        "p99_ms": s.p99_ms,
        "hit_ratio": hit_ratio(lookups),
        "redis_commands_per_request": (after[0] - before[0]) / n,
        "redis_round_trips_per_request": (after[1] - before[1]) / n,
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| mode | rounds | requests | failed | req/s | p50 ms | p99 ms | hit ratio "
        "| Redis cmds/req | Redis round trips/req |\n" + "| --- " * 10 + "|"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['rounds']} | {r['requests']} | {r['failed']} "
            f"| {r['requests_per_s']:.0f} "
            f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['hit_ratio']:.3f} "
            f"| {r['redis_commands_per_request']:.2f} | {r['redis_round_trips_per_request']:.2f} |"
        )
    return "\n".join(lines)


def median_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per mode, in first-seen order: counts summed, figures the median over rounds."""
    modes = list(dict.fromkeys(r["mode"] for r in runs))
    rows = []
    for mode in modes:
        mine = [r for r in runs if r["mode"] == mode]
        row: dict[str, Any] = {"mode": mode, "rounds": len(mine)}
        for key in ("requests", "failed"):
            row[key] = sum(r[key] for r in mine)
        for key in ("requests_per_s", "p50_ms", "p99_ms", "hit_ratio",
                    "redis_commands_per_request", "redis_round_trips_per_request"):  # fmt: skip
            row[key] = statistics.median(r[key] for r in mine)
        rows.append(row)
    return rows


def model_dir(given: Path | None, tmp: Path) -> Path:
    if given is not None:
        return given
    from training.tiny import build_tiny_model_dir  # the hit path does not run the model

    return build_tiny_model_dir(tmp / "tiny-model")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.featurestore_modes")
    parser.add_argument("--model-dir", type=Path, help="Model directory; default: a tiny model.")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--texts", type=int, default=256, help="Distinct texts, all warmed.")
    parser.add_argument(
        "--modes", default="sidecar,external,sentinel,cluster,sidecar+near", help="Comma list."
    )
    parser.add_argument("--rounds", type=int, default=1, help="Interleaved repeats (median).")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="fs-modes-") as d:
        tmp = Path(d)
        args.model_dir = model_dir(args.model_dir, tmp)
        plan = [(n, m) for n in range(args.rounds) for m in args.modes.split(",")]
        for n, mode in tqdm(plan, desc="modes", unit="mode"):
            runs.append(asyncio.run(measure(mode, args, tmp / f"round-{n}")) | {"round": n})
    rows = median_rows(runs)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"args": vars(args) | {"model_dir": str(args.model_dir)},
                                   "rows": rows, "runs": runs}, indent=2))  # fmt: skip
    print(table(rows))
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
