"""The load generator against a real predictor: counts add up, failures are counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.process import free_port
from harness.servers import PredictorProcess
from loadtest.clients import RemoteTargetError, Wire, check_target, make_client
from loadtest.corpus import TextPool, hot_set, load_pool, unique_texts
from loadtest.measure import measure
from loadtest.runner import CLIENT_OVERLOAD, closed_loop, open_loop
from loadtest.stats import summarize


@pytest.fixture(scope="module")
def pool(tiny_model_dir: Path) -> TextPool:
    return load_pool(tiny_model_dir)


def texts(pool: TextPool) -> Iterator[str]:
    return unique_texts(pool)


@pytest.mark.parametrize("wire", list(Wire))
async def test_closed_loop_counts_add_up(
    predictor: PredictorProcess, pool: TextPool, wire: Wire
) -> None:
    client = make_client(wire, url=predictor.url, grpc_target=predictor.grpc_target, concurrency=4)
    try:
        result = await closed_loop(
            client, texts(pool), concurrency=4, max_requests=24, max_seconds=60,
            texts_per_request=2, progress=False,
        )  # fmt: skip
    finally:
        await client.aclose()
    assert result.requests == 24  # the count bound, not the time bound, ended it
    assert result.ok == 24, result.statuses
    assert result.errors == {}
    assert len(result.latencies_s) == 24
    s = summarize(result)
    assert s.texts_per_s == pytest.approx(2 * s.requests_per_s)
    assert s.p50_ms is not None and s.p99_ms is not None and s.max_ms is not None
    assert 0 < s.p50_ms <= s.p99_ms <= s.max_ms


async def test_time_bound_stops_the_run(predictor: PredictorProcess, pool: TextPool) -> None:
    client = make_client(Wire.V1, url=predictor.url, concurrency=2)
    try:
        result = await closed_loop(
            client, texts(pool), concurrency=2, max_requests=10**9, max_seconds=0.5,
            progress=False,
        )  # fmt: skip
    finally:
        await client.aclose()
    assert 0 < result.requests < 10**9
    assert result.elapsed_s < 5
    assert result.ok == result.requests


@pytest.mark.parametrize(
    ("wire", "expected"), [(Wire.V1, "404"), (Wire.V2, "404"), (Wire.GRPC, "grpc:NOT_FOUND")]
)
async def test_failing_endpoint_is_counted_as_errors(
    predictor: PredictorProcess, pool: TextPool, wire: Wire, expected: str
) -> None:
    summary = await measure(
        wire, texts(pool), url=predictor.url, grpc_target=predictor.grpc_target,
        model="no-such-model", concurrency=3, max_requests=9, max_seconds=30, progress=False,
    )  # fmt: skip
    assert summary.requests == 9
    assert summary.ok == 0
    assert summary.errors == {expected: 9}
    assert summary.requests_per_s == 0 and summary.p50_ms is None


async def test_closed_port_is_counted_as_connect_errors(pool: TextPool) -> None:
    client = make_client(Wire.V1, url=f"http://127.0.0.1:{free_port()}", timeout=5)
    try:
        result = await closed_loop(
            client, texts(pool), concurrency=2, max_requests=4, max_seconds=30, progress=False
        )
    finally:
        await client.aclose()
    assert dict(result.statuses) == {"connect": 4}


async def test_open_loop_counts_add_up(predictor: PredictorProcess, pool: TextPool) -> None:
    client = make_client(Wire.V1, url=predictor.url)
    try:
        result = await open_loop(
            client, texts(pool), rate=100, max_requests=20, max_seconds=30, progress=False
        )
    finally:
        await client.aclose()
    assert result.requests == 20
    assert result.ok == 20, result.statuses
    assert result.elapsed_s > 0.05  # Poisson arrivals at 100/s are spread out, not a burst


async def test_open_loop_sheds_arrivals_beyond_its_in_flight_cap(
    predictor: PredictorProcess, pool: TextPool
) -> None:
    client = make_client(Wire.V1, url=predictor.url)
    try:
        result = await open_loop(
            client, texts(pool), rate=5000, max_requests=60, max_seconds=30, max_in_flight=1,
            progress=False,
        )  # fmt: skip
    finally:
        await client.aclose()
    assert result.requests == 60
    assert result.ok + result.statuses[CLIENT_OVERLOAD] == 60
    assert result.ok >= 1 and result.statuses[CLIENT_OVERLOAD] >= 1


async def test_hot_set_reports_cache_hits(predictor: PredictorProcess, pool: TextPool) -> None:
    """The shared predictor caches in memory by default; a 3-text hot set must hit."""
    summary = await measure(
        Wire.V1, hot_set(pool, 3, seed=7), url=predictor.url, grpc_target=predictor.grpc_target,
        concurrency=2, max_requests=60, max_seconds=30, progress=False,
    )  # fmt: skip
    assert summary.ok == 60
    assert summary.cache_lookups is not None
    assert sum(summary.cache_lookups.values()) >= 60
    assert summary.cache_hit_ratio is not None and summary.cache_hit_ratio > 0.5


def test_only_loopback_unless_allowed() -> None:
    check_target("127.0.0.1", allow_remote=False)
    check_target("localhost", allow_remote=False)
    with pytest.raises(RemoteTargetError, match="non-loopback"):
        check_target("192.0.2.10", allow_remote=False)  # TEST-NET-1: resolved, never contacted
    check_target("192.0.2.10", allow_remote=True)
    with pytest.raises(RemoteTargetError):
        make_client(Wire.GRPC, grpc_target="192.0.2.10:8081")
