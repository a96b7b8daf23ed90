"""A retry storm does not collapse the server (issue 22, item 3).

Clients that give up after a short timeout and retry at once are what turns overload into
collapse: if the server kept computing what the gone clients asked, every retry would wait
behind the abandoned work and time out too. Here abandoned texts are dropped from the queue,
so the goodput (answers clients still waited for) stays near the model's capacity.

`make reliability` prints the figures; the model is a slow stand-in (a fixed cost per forward
pass), so capacity is known and the check does not depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from harness.scrape import sample_sum
from loadtest.runner import drive
from tests.fixtures.fake_models import write_slow_model
from tests.fixtures.predictor_proc import PredictorProcess
from tests.reliability.report import record

PREDICT = "/v1/models/sentiment:predict"
FORWARD_S = 0.05  # one forward pass of the stand-in model
CAP = 4  # texts per forward pass: capacity about CAP / FORWARD_S = 80 texts/s
TIMEOUT_S = 0.5  # the clients' own: they give up, close the connection and retry at once


async def storm(
    url: str, clients: int, seconds: float, timeout: float
) -> tuple[Counter[str], float]:
    """`clients` workers each POST one fresh text; a timed-out one retries at once."""
    outcome: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as http:

        async def send(n: int) -> str:
            try:
                resp = await http.post(
                    PREDICT, json={"instances": [f"storm text {n} {time.monotonic_ns()}"]}
                )
            except httpx.TimeoutException:
                outcome["timed out"] += 1
                return "timeout"
            outcome[str(resp.status_code)] += 1
            return str(resp.status_code)

        result = await drive(send, concurrency=clients, max_seconds=seconds)
    return outcome, result.elapsed_s


@pytest.mark.reliability
def test_goodput_holds_under_a_retry_storm(tiny_model_dir: Path, tmp_path: Path) -> None:
    slow = write_slow_model(tiny_model_dir, tmp_path / "slow", FORWARD_S)
    env = {"PREDICTOR_MAX_BATCH_SIZE": str(CAP), "PREDICTOR_CACHE_ENABLED": "false"}
    server = PredictorProcess(slow, tmp_path / "log", env=env).start().wait_ready(120)
    try:
        calm, calm_s = asyncio.run(storm(server.url, 8, 10, timeout=30))
        capacity = calm["200"] / calm_s
        # As many clients as the model can answer within the timeout when nobody gives up
        # (a closed loop of n waits about n / capacity): any abandoned work it still did
        # would push the rest past their timeout, and they would retry too.
        clients = max(8, int(0.9 * TIMEOUT_S * capacity))
        dropped_before = sample_sum(server.url, "predictor_dropped_texts_total", reason="cancelled")
        stormy, storm_s = asyncio.run(storm(server.url, clients, 20, timeout=TIMEOUT_S))
        dropped = sample_sum(server.url, "predictor_dropped_texts_total", reason="cancelled")
        goodput = stormy["200"] / storm_s
        note = (
            f"capacity {capacity:.0f}/s (8 patient clients); storm: {clients} clients, "
            f"{TIMEOUT_S:g} s timeout, "
            f"retry at once: goodput {goodput:.0f}/s ({goodput / capacity:.0%}), "
            f"{stormy['timed out']} timed out, {dropped - dropped_before:.0f} texts dropped unrun"
        )
        print(note)
        server_errors = sum(n for s, n in stormy.items() if s.isdigit() and int(s) >= 500)
        record(
            "retry storm",
            f"{clients} clients, {TIMEOUT_S:g} s timeout",
            requests=sum(stormy.values()),
            server_errors=server_errors,
            crashes=0 if server.ready() else 1,
            note=note,
        )
        assert server_errors == 0, stormy
        assert dropped - dropped_before > 0, "no abandoned text was dropped"
        assert goodput >= 0.5 * capacity, note
    finally:
        server.stop()
