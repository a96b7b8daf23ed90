"""Readiness follows the model; SIGTERM drains; a bad model directory fails loudly."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc

from harness.inprocess import InProcessPredictor
from harness.process import poll
from harness.scrape import sample_sum
from predictor.settings import ServingSettings
from tests.fixtures.fake_models import write_broken_model, write_slow_model
from tests.fixtures.predictor_proc import PredictorProcess
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.v2_grpc import infer_request

PREDICT = "/v1/models/sentiment:predict"
T = TypeVar("T")


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
                    # counted under the model's own name, so the dashboard sees start-up
                    # 503s (they used to fold into model="unknown")
                    assert re.search(
                        r'predictor_requests_total\{[^}]*code="503"[^}]*model="sentiment"',
                        httpx.get(f"{server.url}/metrics", timeout=5).text,
                    )
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


async def until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll instead of sleeping (uvicorn and the batcher act on their own ticks); async,
    unlike harness.poll, because the requests being watched run on this loop."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.02)


async def sigterm_during(
    server: PredictorProcess,
    calls: Sequence[Awaitable[T]],
    meanwhile: Callable[[], Awaitable[None]] | None = None,
) -> list[T]:
    """Start the calls, wait until the server has every one in flight, send SIGTERM,
    (run `meanwhile`), and return the answers."""
    tasks = [asyncio.ensure_future(c) for c in calls]
    n = len(tasks)
    await until(
        lambda: sample_sum(server.url, "predictor_inflight_requests") == n, what=f"{n} in flight"
    )
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    if meanwhile is not None:
        await meanwhile()
    return list(await asyncio.gather(*tasks))


def refuses_connections(server: PredictorProcess) -> bool:
    try:
        httpx.get(f"{server.url}/v2/health/live", timeout=2)
    except httpx.ConnectError:
        return True
    return False


def slow_server(slow_model_dir: Path, tmp_path: Path, **env: str) -> PredictorProcess:
    return PredictorProcess(
        slow_model_dir,
        tmp_path / "log",
        env={"PREDICTOR_MAX_BATCH_SIZE": "2", "PREDICTOR_WARMUP_BATCHES": "0", **env},
    ).start().wait_ready()  # fmt: skip


async def test_sigterm_answers_in_flight_requests_then_exits(
    slow_model_dir: Path, tmp_path: Path
) -> None:
    server = slow_server(slow_model_dir, tmp_path)

    async def refused_after_sigterm() -> None:
        # After SIGTERM the listener is closed: a new connection is refused (the README's
        # choice; Kubernetes has taken the pod out of the endpoints by then).
        await until(lambda: refuses_connections(server), what="the listener to close")
        with pytest.raises(httpx.ConnectError):
            httpx.post(f"{server.url}{PREDICT}", json={"instances": ["late"]}, timeout=5)

    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        # 8 texts, 2 per 0.25 s pass: about a second of queued work
        calls = [client.post(PREDICT, json={"instances": [f"t{i}"]}) for i in range(8)]
        responses = await sigterm_during(server, calls, refused_after_sigterm)
    assert [r.status_code for r in responses] == [200] * 8
    assert server.stop() == 0
    assert "drained" in server.logs()


async def test_a_drain_that_runs_out_answers_the_rest_503_shutting_down(
    slow_model_dir: Path, tmp_path: Path
) -> None:
    """Issue 10, item 5: PREDICTOR_DRAIN_TIMEOUT_S=2 with 32 queued texts used to answer
    25 of them with uvicorn's plain-text 500; now what is left gets a JSON 503."""
    server = slow_server(
        slow_model_dir,
        tmp_path,
        PREDICTOR_MAX_BATCH_SIZE="1",
        PREDICTOR_DRAIN_TIMEOUT_S="2",
        PREDICTOR_DRAIN_FLUSH_S="0.5",
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        # 8 s of work at 0.25 s a pass: far beyond the 1.5 s request part of the drain
        calls = [client.post(PREDICT, json={"instances": [f"q{i}"]}) for i in range(32)]
        responses = await sigterm_during(server, calls)
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503}, codes
    assert codes.count(200) >= 1 and codes.count(503) >= 1, codes
    for r in responses:
        if r.status_code == 503:
            assert r.headers["content-type"] == "application/json"
            assert "shutting down" in r.json()["error"]
    assert server.stop() == 0
    assert "queued texts answered 503 (shutting down)" in server.logs()


async def test_grpc_calls_in_flight_during_sigterm_are_answered(
    slow_model_dir: Path, tmp_path: Path
) -> None:
    server = slow_server(slow_model_dir, tmp_path)
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
        calls = [stub.ModelInfer(infer_request(f"g{i}".encode()), timeout=60) for i in range(6)]
        answers = await sigterm_during(server, calls)
    for answer in answers:
        assert {o.name for o in answer.outputs} == {"label", "probabilities"}
    assert server.stop() == 0


async def test_write_behind_is_flushed_through_sigterm(
    slow_model_dir: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    """Predictions answered during the drain are written after their responses; the
    flush part of the drain budget must get them to Redis before the process exits."""
    server = slow_server(slow_model_dir, tmp_path, PREDICTOR_REDIS_URL=redis_server.url())
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        calls = [client.post(PREDICT, json={"instances": [f"w{i}"]}) for i in range(8)]
        responses = await sigterm_during(server, calls)
    assert [r.status_code for r in responses] == [200] * 8
    assert server.stop() == 0
    stored = list(redis_server.client().scan_iter("tss:pred:sentiment:*"))
    assert len(stored) == 8, stored


def test_drain_budget_fits_the_charts_grace_period() -> None:
    """One budget: the chart's preStop sleep plus the code's whole drain (requests, then
    the write-behind flush) fit terminationGracePeriodSeconds, with the chart's numbers."""
    from tests.reliability.chart_numbers import predictor_numbers

    tight = ["predictor.drainTimeoutSeconds=60", "predictor.terminationGracePeriodSeconds=65"]
    for sets in ([], tight):
        pod = predictor_numbers(sets)
        values: dict[str, Any] = {"drain_timeout_s": pod.env["PREDICTOR_DRAIN_TIMEOUT_S"]}
        if "PREDICTOR_DRAIN_FLUSH_S" in pod.env:
            values["drain_flush_s"] = pod.env["PREDICTOR_DRAIN_FLUSH_S"]
        settings = ServingSettings(**values)
        requests_s, flush_s = settings.drain_budget()
        assert requests_s > 0 and flush_s > 0
        assert requests_s + flush_s == settings.drain_timeout_s  # nothing outside the budget
        assert pod.pre_stop_s + requests_s + flush_s <= pod.grace_period_s, (sets, pod)


def test_broken_model_exits_nonzero(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = write_broken_model(tiny_model_dir, tmp_path / "broken")
    server = InProcessPredictor(broken, tmp_path / "log").start()
    poll(lambda: not server.running(), 60, "the server to give up")
    assert server.stop() == 1  # what `python -m predictor` exits with
    assert "model failed to load" in server.logs()


def test_missing_model_dir_names_the_fix(tmp_path: Path) -> None:
    server = InProcessPredictor(tmp_path / "nowhere", tmp_path / "log").start()
    poll(lambda: not server.running(), 60, "the server to give up")
    assert server.stop() == 1
    assert "run `make model`" in server.logs()


def test_async_init_mode_waits_for_a_modelcar_to_link_the_model(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """KServe sets MODEL_INIT_MODE=async beside an oci:// modelcar, whose files appear after the
    predictor starts (found by running the chart's pod, tests/deploy/test_pod.py): the server
    waits for them instead of exiting and being restarted with back-off."""
    later = tmp_path / "mnt" / "models"
    server = InProcessPredictor(later, tmp_path / "log", env={"MODEL_INIT_MODE": "async"}).start()
    try:
        time.sleep(1.0)  # the server is up and looking
        assert server.running()
        assert httpx.get(f"{server.url}/v2/health/ready", timeout=2).status_code == 503
        later.parent.mkdir(parents=True)
        shutil.copytree(tiny_model_dir, tmp_path / "staged")
        (tmp_path / "staged").rename(later)  # the modelcar's link appears at once
        server.wait_ready(60)
        assert "waiting up to" in server.logs()
    finally:
        assert server.stop() == 0
