"""`python -m loadtest`: load a running predictor and print/write what it did.

Examples:
  python -m loadtest --concurrency 1 16 64                 # closed loop, v1 REST, unique texts
  python -m loadtest --wire grpc --rate 50 100 200         # open loop, Poisson arrivals
  python -m loadtest --workload hot --hot-size 200 --concurrency 16 --json out.json --png out.png

Targets loopback (127.0.0.1) unless --url/--grpc-target name another host AND
--allow-remote is given.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

from loadtest.clients import RemoteTargetError, Wire
from loadtest.corpus import hot_set, load_pool, unique_texts
from loadtest.measure import measure
from loadtest.report import plot_latency_vs_throughput, summary_table, write_json
from loadtest.stats import Summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m loadtest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--wire", type=Wire, choices=list(Wire), default=Wire.V1)
    p.add_argument("--url", default="http://127.0.0.1:8080", help="REST base URL")
    p.add_argument("--grpc-target", default="127.0.0.1:8081", help="gRPC host:port")
    p.add_argument("--allow-remote", action="store_true", help="permit a non-loopback target")
    p.add_argument("--model", default="sentiment")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--concurrency", type=int, nargs="+", help="closed loop, one run per value")
    mode.add_argument("--rate", type=float, nargs="+", help="open loop req/s, one run per value")
    p.add_argument("--requests", type=int, default=2000, help="most requests per run")
    p.add_argument("--seconds", type=float, default=30.0, help="most seconds per run")
    p.add_argument("--texts-per-request", type=int, default=1)
    p.add_argument("--workload", choices=["unique", "hot"], default="unique")
    p.add_argument("--hot-size", type=int, default=500, help="distinct texts in the hot set")
    p.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of the hot set")
    p.add_argument(
        "--model-dir",
        type=Path,
        default=Path("models/sentiment"),
        help="its card's split keeps training rows out of the texts",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout (s)")
    p.add_argument("--json", type=Path, help="write the summaries here")
    p.add_argument("--png", type=Path, help="plot latency against throughput here")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if not args.concurrency and not args.rate:
        args.concurrency = [16]
    return args


def workload(args: argparse.Namespace) -> Iterator[str]:
    pool = load_pool(args.model_dir)
    print(f"texts: {pool.source}", file=sys.stderr)
    if args.workload == "hot":
        return hot_set(pool, args.hot_size, args.zipf)
    return unique_texts(pool)


async def run(args: argparse.Namespace) -> list[Summary]:
    texts = workload(args)
    points: list[tuple[int | None, float | None]] = (
        [(c, None) for c in args.concurrency]
        if args.concurrency
        else [(None, r) for r in args.rate]
    )
    out = []
    for concurrency, rate in points:
        summary = await measure(
            args.wire,
            texts,
            url=args.url,
            grpc_target=args.grpc_target,
            concurrency=concurrency,
            rate=rate,
            max_requests=args.requests,
            max_seconds=args.seconds,
            texts_per_request=args.texts_per_request,
            model=args.model,
            timeout=args.timeout,
            allow_remote=args.allow_remote,
            progress=not args.no_progress,
        )
        out.append(summary)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summaries = asyncio.run(run(args))
    except RemoteTargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(summaries))
    if args.json:
        write_json(args.json, [s.as_dict() for s in summaries])
    if args.png:
        plot_latency_vs_throughput({f"{args.wire} {args.workload}": summaries}, args.png)
    return 1 if any(s.ok == 0 for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
