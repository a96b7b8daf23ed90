"""Readiness follows the model; SIGTERM drains; a bad model directory fails loudly."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.fake_models import write_broken_model, write_slow_model
from tests.fixtures.predictor_proc import PredictorProcess

PREDICT = "/v1/models/sentiment:predict"


@pytest.fixture(scope="module")
def slow_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_slow_model(tiny_model_dir, tmp_path_factory.mktemp("slow-model"), 0.25)


def test_not_ready_until_loaded_and_warm(slow_model_dir: Path, tmp_path: Path) -> None:
    server = PredictorProcess(
        slow_model_dir, tmp_path / "log", env={"PREDICTOR_WARMUP_BATCHES": "12"}
    ).start()
    try:
        seen_unready = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                live = httpx.get(f"{server.url}/v2/health/live", timeout=2)
            except httpx.HTTPError:
                time.sleep(0.05)
                continue
            ready = httpx.get(f"{server.url}/v2/health/ready", timeout=2)
            if ready.status_code == 503:
                assert live.status_code == 200
                assert ready.json() == {"ready": False}
                model_ready = httpx.get(f"{server.url}/v2/models/sentiment/ready", timeout=2)
                early = httpx.post(f"{server.url}{PREDICT}", json={"instances": ["hi"]})
                if model_ready.status_code == 503 and early.status_code == 503:
                    assert "not ready" in early.json()["error"]
                    seen_unready = True
                else:  # warm-up ended between the calls: then the server must say so too
                    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
            elif ready.status_code == 200:
                break
            time.sleep(0.05)
        assert seen_unready, "never observed the loading phase"
        assert httpx.get(f"{server.url}/v2/models/sentiment/ready").status_code == 200
        resp = httpx.post(f"{server.url}{PREDICT}", json={"instances": ["hi"]}, timeout=30)
        assert resp.json()["predictions"][0]["label"] == "neutral"
    finally:
        assert server.stop() == 0


async def test_sigterm_answers_in_flight_requests_then_exits(
    slow_model_dir: Path, tmp_path: Path
) -> None:
    server = PredictorProcess(
        slow_model_dir, tmp_path / "log",
        env={"PREDICTOR_MAX_BATCH_SIZE": "2", "PREDICTOR_WARMUP_BATCHES": "0"},
    ).start().wait_ready()  # fmt: skip
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        in_flight = [
            asyncio.create_task(client.post(PREDICT, json={"instances": [f"t{i}"]}))
            for i in range(8)
        ]  # 8 texts, 2 per 0.25 s pass: about a second of queued work
        await asyncio.sleep(0.4)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.1)
        with pytest.raises(httpx.HTTPError):  # no new connections once draining
            async with httpx.AsyncClient(base_url=server.url, timeout=5) as fresh:
                late = await fresh.post(PREDICT, json={"instances": ["late"]})
                late.raise_for_status()
        responses = await asyncio.gather(*in_flight)
    assert [r.status_code for r in responses] == [200] * 8
    assert server.stop() == 0
    assert "drained" in server.logs()


def test_broken_model_exits_nonzero(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = write_broken_model(tiny_model_dir, tmp_path / "broken")
    server = PredictorProcess(broken, tmp_path / "log").start()
    assert server.proc is not None
    assert server.proc.wait(60) == 1
    assert "model failed to load" in server.logs()


def test_missing_model_dir_names_the_fix(tmp_path: Path) -> None:
    server = PredictorProcess(tmp_path / "nowhere", tmp_path / "log").start()
    assert server.proc is not None
    assert server.proc.wait(60) == 1
    assert "run `make model`" in server.logs()
