"""The long checks `make reliability` runs: Redis faults under load, SIGTERM under load,
a memory soak and the long fuzz budget. Each records its figures for the table.

Every phase asserts no server error (a 5xx other than the documented 503) and no
crash; a wrong answer would show as a non-200 in phases where only 200 is allowed.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from tests.fixtures.predictor_proc import PredictorProcess
from tests.fixtures.redis_server import RedisServer
from tests.reliability.corpus import Target, cases, check
from tests.reliability.load import rss_bytes, run_load
from tests.reliability.report import record, record_stats

pytestmark = pytest.mark.reliability


def distinct(n: int) -> dict[str, object]:
    return {"instances": [f"fault test text {n}, never seen before"]}


def alive(server: PredictorProcess) -> bool:
    return server.proc is not None and server.proc.poll() is None


async def test_redis_killed_hung_and_restarted_under_load(
    tiny_model_dir: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    server = PredictorProcess(
        tiny_model_dir,
        tmp_path / "log",
        env={"PREDICTOR_REDIS_URL": redis_server.url(), "PREDICTOR_ACCESS_LOG": "false"},
    ).start().wait_ready()  # fmt: skip
    crashes = 0
    try:

        async def phase(name: str) -> None:
            stats = await run_load(server.url, clients=16, seconds=10, body=distinct)
            record_stats("redis faults", name, stats, crashes=0 if alive(server) else 1)
            assert set(stats.statuses) == {200}, (name, stats.statuses, stats.transport_errors)

        await phase("redis up")
        redis_server.stop()
        await phase("redis killed")
        redis_server.start()
        await phase("redis restarted")
        assert redis_server.proc is not None
        redis_server.proc.send_signal(signal.SIGSTOP)  # hung: accepts nothing, answers nothing
        try:
            await phase("redis hung (SIGSTOP)")
        finally:
            redis_server.proc.send_signal(signal.SIGCONT)
        await phase("redis resumed")
    finally:
        crashes += 0 if alive(server) else 1
        code = server.stop()
    assert crashes == 0 and code == 0


async def test_sigterm_under_load(tiny_model_dir: Path, tmp_path: Path) -> None:
    """16 clients running when SIGTERM comes: every request sent is answered 200 or with
    the documented 503; after the listener closes, new connections are refused."""
    server = PredictorProcess(
        tiny_model_dir, tmp_path / "log", env={"PREDICTOR_ACCESS_LOG": "false"}
    ).start().wait_ready()  # fmt: skip
    stop = asyncio.Event()
    load = asyncio.create_task(
        run_load(server.url, clients=16, seconds=60, body=distinct, stop=stop)
    )
    await asyncio.sleep(5)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    code = await asyncio.get_running_loop().run_in_executor(None, server.proc.wait, 60)
    stop.set()
    stats = await load
    refused = sum(n for name, n in stats.transport_errors.items() if name == "ConnectError")
    other = sum(stats.transport_errors.values()) - refused
    record_stats(
        "SIGTERM under load",
        "16 clients, SIGTERM at 5 s",
        stats,
        crashes=0 if code == 0 else 1,
        note=f"exit {code}; {refused} refused connections after the listener closed, "
        f"{other} other transport errors",
    )
    assert code == 0
    assert set(stats.statuses) <= {200, 503}, stats.statuses
    for body in stats.bodies_503:
        assert "shutting down" in json.loads(body)["error"]


@pytest.mark.timeout(1800)
async def test_memory_soak(tiny_model_dir: Path, tmp_path: Path) -> None:
    """20,000 requests (distinct, repeated and hostile, v1 and v2): RSS after the
    first 5,000 against RSS at the end."""
    server = PredictorProcess(
        tiny_model_dir, tmp_path / "log", env={"PREDICTOR_ACCESS_LOG": "false"}
    ).start().wait_ready()  # fmt: skip
    hostile = [c for c in cases() if c.wire in ("v1", "v2-json") and "body cap" not in c.name]
    target = Target(server.url, server.grpc_target)

    def mixed(n: int) -> dict[str, object]:
        if n % 3 == 0:
            return {"instances": [f"soak text {n}"]}  # distinct: a cache miss, then an entry
        return {"instances": [f"soak repeat {n % 50}"]}  # a cache hit

    try:
        assert server.pid is not None
        warm = await run_load(server.url, clients=8, requests=5000, body=mixed)
        rss_warm = rss_bytes(server.pid)
        for case in hostile:
            assert check(case, case.send(target)) == [], case.id
        rest = await run_load(server.url, clients=8, requests=15000, body=mixed)
        rss_end = rss_bytes(server.pid)
        ok = alive(server)
    finally:
        code = server.stop()
    record_stats("soak", "first 5,000", warm)
    record(
        "soak",
        "next 15,000 (+ hostile corpus)",
        requests=rest.sent + len(hostile),
        server_errors=rest.server_errors,
        crashes=0 if ok and code == 0 else 1,
        p99_ms=rest.p99_ms(),
        rss_growth_mb=(rss_end - rss_warm) / 2**20,
        note="RSS growth from 5,000 to 20,000 requests (5,000 new cache entries at ~0.7 KB)",
    )
    assert set(warm.statuses) == {200} and set(rest.statuses) == {200}
    assert (rss_end - rss_warm) < 64 * 2**20


@pytest.mark.timeout(3600)
def test_long_fuzz(tmp_path: Path) -> None:
    """The fuzz module again with a budget of 500 examples per property and operation."""
    import os
    import subprocess
    import sys
    import time

    from tests.fixtures.predictor_proc import REPO

    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/reliability/test_fuzz.py", "-q",
         "-p", "no:cacheprovider", "-m", "not slow"],
        cwd=REPO, env={**os.environ, "FUZZ_EXAMPLES": "500"}, capture_output=True, text=True,
        timeout=3600,
    )  # fmt: skip
    record(
        "fuzz (schemathesis + hypothesis)",
        "500 examples per operation/property",
        requests=0,
        server_errors=0 if result.returncode == 0 else 1,
        crashes=0,
        note=f"{time.monotonic() - start:.0f} s (requests not counted); "
        f"{result.stdout.strip().splitlines()[-1]}",
    )
    assert result.returncode == 0, result.stdout[-5000:]
