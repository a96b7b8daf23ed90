"""The feature store behind Redis Sentinel: a master, a replica and three sentinels started
here; SIGKILL of the master under a bounded closed loop of 16 clients costs no request, and
hits resume on the promoted replica without a restart of the predictor."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness.inprocess import InProcessPredictor
from harness.redis_deployments import SentinelDeployment, wait_until
from harness.scrape import sample_sum
from harness.servers import Predictor
from loadtest.runner import drive

CLIENTS = 16
RUN_S = 24.0
KILL_AT_S = 6.0
POLL_S = 0.25


def hits(proc: Predictor) -> float:
    return sample_sum(proc.url, "predictor_cache_lookups_total", result="hit")


@dataclass
class Loop:
    """What a bounded closed loop saw: status per request (an exception's name if none)."""

    statuses: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> dict[str, int]:
        return {s: n for s, n in self.statuses.items() if s != "200"}


async def closed_loop(url: str, texts: list[str], clients: int, seconds: float) -> Loop:
    """`clients` workers, each sending its next one-text request when the last one answered
    (the loop is loadtest.runner.drive)."""
    loop = Loop()
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=clients)) as c:

        async def send(n: int) -> str:
            try:
                r = await c.post(url, json={"instances": [texts[n % len(texts)]]})
            except httpx.HTTPError as exc:
                return type(exc).__name__
            ok = r.status_code == 200 and len(r.json()["predictions"]) == 1
            return "200" if ok else str(r.status_code)

        result = await drive(send, concurrency=clients, max_seconds=seconds)
    loop.statuses.update(result.statuses)
    loop.elapsed_s = result.elapsed_s
    return loop


async def test_master_sigkill_under_load_fails_no_request_and_hits_resume(
    sentinel_deployment: SentinelDeployment, tiny_model_dir: Path, tmp_path: Path
) -> None:
    env = {
        # no password in the URL: it comes from the mounted-secret file, as in the chart
        "PREDICTOR_REDIS_URL": sentinel_deployment.url(password=""),
        "PREDICTOR_SECRETS_DIR": str(tmp_path / "secrets"),
        "PREDICTOR_NEAR_CACHE_ENTRIES": "0",  # every hit must come from the master
        "PREDICTOR_BREAKER_FAILURES": "2",
        "PREDICTOR_BREAKER_RESET_S": "0.3",
        "PREDICTOR_HEALTH_INTERVAL_S": "0.3",
    }
    (tmp_path / "secrets").mkdir()
    assert sentinel_deployment.password
    (tmp_path / "secrets" / "PREDICTOR_REDIS_PASSWORD").write_text(
        sentinel_deployment.password + "\n"
    )
    proc = InProcessPredictor(tiny_model_dir, tmp_path / "predictor.log", env=env)
    texts = [f"failover text {n}" for n in range(64)]
    try:
        proc.start().wait_ready()
        old = sentinel_deployment.master()
        replica = next(n for n in sentinel_deployment.nodes if n is not old)
        r = httpx.post(f"{proc.url}/v1/models/sentiment:predict", json={"instances": texts})
        assert r.status_code == 200, r.text
        wait_until(lambda: replica.client().dbsize() >= len(texts), "the replica never synced")

        timeline: list[tuple[float, float]] = []  # (seconds since start, hits so far)
        start = time.monotonic()

        async def chaos() -> None:
            killed = False
            while time.monotonic() - start < RUN_S:
                timeline.append((time.monotonic() - start, await asyncio.to_thread(hits, proc)))
                if not killed and time.monotonic() - start >= KILL_AT_S:
                    old.kill()
                    killed = True
                await asyncio.sleep(POLL_S)

        predict = f"{proc.url}/v1/models/sentiment:predict"
        result, _ = await asyncio.gather(closed_loop(predict, texts, CLIENTS, RUN_S), chaos())
    finally:
        logs = proc.logs()
        proc.stop()

    assert result.requests > 100, "the closed loop never got going"
    assert result.failed == {}, f"failed requests during the failover: {result.failed}"
    assert sentinel_deployment.master_port() == replica.port, "the replica was not promoted"
    after_kill = [(t, h) for t, h in timeline if t >= KILL_AT_S]
    stalled = next(
        (i for i in range(1, len(after_kill)) if after_kill[i][1] == after_kill[i - 1][1]), None
    )
    assert stalled is not None, "hits never stopped: the master's death went unnoticed?"
    resumed = next(
        (t for i, (t, h) in enumerate(after_kill) if i > stalled and h > after_kill[i - 1][1]),
        None,
    )
    assert resumed is not None, f"hits never resumed after the failover:\n{logs[-3000:]}"
    recovery = resumed - KILL_AT_S
    print(
        f"\nsentinel failover: {result.requests} requests from {CLIENTS} clients in "
        f"{result.elapsed_s:.1f} s, 0 failed; hits resumed {recovery:.2f} s after SIGKILL "
        f"of the master (down-after-milliseconds {sentinel_deployment.down_after_ms})"
    )
    assert "hunter" not in logs and sentinel_deployment.password not in logs
