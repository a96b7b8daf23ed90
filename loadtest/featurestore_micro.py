"""`python -m loadtest.featurestore_micro`: the feature store's own LRU and circuit breaker
against the libraries that do the same (cachetools, pybreaker), per operation.

Both sit on the request path (the near cache and the memory backend on every lookup, the
breaker around every backend call), so ours are kept only while they measure faster; the
figures are in their docstrings (predictor/featurestore/lru.py, breaker.py).
"""

from __future__ import annotations

import argparse
import time
import timeit
from collections.abc import Callable

from cachetools import LRUCache, TTLCache
from pybreaker import CircuitBreaker as LibraryBreaker

from predictor.featurestore.breaker import CircuitBreaker
from predictor.featurestore.lru import LRU


def cases(n: int) -> dict[str, tuple[Callable[[], None], int]]:
    """name -> (one round, operations in it): n puts then n gets, or n guarded calls."""
    keys = [f"tss:pred:sentiment:v1:fp32:{i:064x}" for i in range(n)]

    def ours_ttl() -> None:
        c: LRU[bytes] = LRU(n // 2)
        for k in keys:
            c.put(k, b"v", 3600)
        for k in keys:
            c.get(k)

    def cachetools_ttl() -> None:
        c: TTLCache[str, bytes] = TTLCache(n // 2, 3600, timer=time.monotonic)
        for k in keys:
            c[k] = b"v"
        for k in keys:
            c.get(k)

    def ours_lru() -> None:
        c: LRU[bytes] = LRU(n // 2)
        for k in keys:
            c.put(k, b"v")
        for k in keys:
            c.get(k)

    def cachetools_lru() -> None:
        c: LRUCache[str, bytes] = LRUCache(n // 2)
        for k in keys:
            c[k] = b"v"
        for k in keys:
            c.get(k)

    ours_b = CircuitBreaker(5, 1.0)
    theirs_b = LibraryBreaker(fail_max=5, reset_timeout=1)

    def ours_breaker() -> None:
        for _ in range(n):
            if ours_b.allow():
                ours_b.success()

    def pybreaker_breaker() -> None:
        for _ in range(n):
            theirs_b.call(lambda: None)

    return {
        "LRU + TTL (memory backend): ours": (ours_ttl, 2 * n),
        "LRU + TTL: cachetools.TTLCache": (cachetools_ttl, 2 * n),
        "LRU (near cache): ours": (ours_lru, 2 * n),
        "LRU: cachetools.LRUCache": (cachetools_lru, 2 * n),
        "breaker allow + success: ours": (ours_breaker, n),
        "breaker call: pybreaker": (pybreaker_breaker, n),
    }


def measure(n: int = 10_000, repeat: int = 5) -> dict[str, float]:
    """Nanoseconds per operation, best of `repeat` rounds."""
    return {
        name: min(timeit.repeat(run, number=1, repeat=repeat)) / ops * 1e9
        for name, (run, ops) in cases(n).items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.featurestore_micro", description=__doc__
    )
    parser.add_argument("-n", type=int, default=10_000, help="keys / calls per round")
    args = parser.parse_args(argv)
    for name, ns in measure(args.n).items():
        print(f"{name:36s} {ns:8.0f} ns per operation")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
