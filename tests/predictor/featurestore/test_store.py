"""FeatureStore and PredictionCache over a real Redis: fail-open, breaker, write-behind."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from predictor.featurestore import keys
from predictor.featurestore.predictions import Authored, PredictionCache
from predictor.featurestore.settings import FeatureStoreSettings
from predictor.featurestore.store import FeatureStore, Unavailable
from predictor.featurestore.writer import WriteOp
from predictor.prediction import Prediction
from tests.fixtures.redis_server import RedisServer

# the `store` fixture and the tests must share one loop (fixtures default to the session's)
pytestmark = pytest.mark.asyncio(loop_scope="session")

P = Prediction("positive", 0.75, {"negative": 0.05, "neutral": 0.2, "positive": 0.75})


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def make(url: str, **kw: object) -> FeatureStore:
    settings = FeatureStoreSettings(
        redis_url=SecretStr(url),
        key_prefix="",
        breaker_failures=2,
        breaker_reset_s=0.3,
        health_interval_s=0.2,
        cache_ttl_seconds=3600,
        **{"near_cache_entries": 0, **kw},  # type: ignore[arg-type]  # 0: watch Redis itself
    )
    return FeatureStore(settings)


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[FeatureStore]:
    fs = make(redis_server.url())
    await fs.start()
    yield fs
    await fs.close()


async def test_hits_are_per_version(store: FeatureStore, redis_server: RedisServer) -> None:
    cache = PredictionCache(store, "m-versions")
    assert await cache.lookup("a", ["hello"]) == [None]
    cache.remember("a", [("hello", P)])
    await store.writer.join()
    assert await cache.lookup("a", ["  hello "]) == [P]
    assert await cache.lookup("b", ["hello"]) == [None], "a new version must not see old entries"
    assert (
        sample("predictor_cache_lookups_total", model="m-versions", version="a", result="hit") == 1
    )
    assert (
        sample("predictor_cache_lookups_total", model="m-versions", version="b", result="miss") == 1
    )
    (key,) = redis_server.client().keys("*")
    assert key == keys.prediction_key("m-versions", "a", "hello").encode()
    assert 3590 < redis_server.client().ttl(key) <= 3600


async def test_history_is_written_behind_and_deduplicated(store: FeatureStore) -> None:
    cache = PredictionCache(store, "m-hist")
    neg = Prediction("negative", 0.6, {"negative": 0.6, "neutral": 0.3, "positive": 0.1})
    cache.remember("a", [], [Authored("Bob", "1", 100.0, P), Authored("bob", "2", 50.0, neg)])
    cache.remember("b", [], [Authored("bob", "1", 100.0, neg)])  # re-predicted by version b
    await store.writer.join()
    history = await cache.history("BOB", 100)
    assert [(e.tweet_id, e.label) for e in history] == [("2", "negative"), ("1", "negative")]


async def test_redis_down_is_unavailable_then_breaker_skips_then_recovers(
    store: FeatureStore, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = PredictionCache(store, "m-down")
    cache.remember("a", [("x", P)])
    await store.writer.join()
    redis_server.stop()
    errors_before = sample(
        "predictor_cache_lookups_total", model="m-down", version="a", result="error"
    )
    with caplog.at_level(logging.WARNING, "predictor.featurestore.store"):
        results = [await cache.lookup("a", ["x", "y"]) for _ in range(20)]
    assert results == [[None, None]] * 20, "fail-open: misses, never an exception"
    errors = sample("predictor_cache_lookups_total", model="m-down", version="a", result="error")
    assert errors - errors_before == 40
    assert store.breaker.state == "open"
    assert sample("predictor_featurestore_up", backend="redis") == 0
    warnings = [r for r in caplog.records if "serving without it" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    # the breaker turns calls into instant skips: no connect attempt per request
    start = time.perf_counter()
    for _ in range(100):
        with pytest.raises(Unavailable, match="circuit open"):
            await store.get_many(["x"])
    assert time.perf_counter() - start < 0.05

    redis_server.start()
    deadline = time.monotonic() + 5
    while store.breaker.state != "closed" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert store.up and sample("predictor_featurestore_up", backend="redis") == 1
    cache.remember("a", [("x", P)])  # the restarted Redis is empty; write again
    await store.writer.join()
    assert await cache.lookup("a", ["x"]) == [P]


async def test_wrong_password_fails_open(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = RedisServer(tmp_path_factory.mktemp("r"), password="secret").start()
    try:
        fs = make(server.url(password="nope"))
        await fs.start()
        cache = PredictionCache(fs, "m-auth")
        before = sample("predictor_cache_write_errors_total", model="m-auth")
        assert await cache.lookup("a", ["x"]) == [None]
        cache.remember("a", [("x", P), ("y", P)])
        await fs.writer.join()
        assert sample("predictor_cache_write_errors_total", model="m-auth") - before == 2
        assert not fs.up
        await fs.close()
        assert server.client().dbsize() == 0
    finally:
        server.stop()


async def test_writes_are_batched_and_flushed_on_close(redis_server: RedisServer) -> None:
    fs = make(redis_server.url())
    await fs.start()
    redis_server.client().config_resetstat()
    for n in range(50):
        fs.write(WriteOp("m-batch", values={f"k{n}": b"v"}))
    await fs.close()  # must flush what is queued before releasing the connections
    raw = redis_server.client()
    assert raw.dbsize() == 50
    assert raw.info("commandstats")["cmdstat_set"]["calls"] == 50
    assert all(0 < raw.ttl(k) <= 3600 for k in raw.keys("*"))


async def test_full_queue_drops_and_counts(redis_server: RedisServer) -> None:
    fs = make(redis_server.url(), write_queue_size=5)
    await fs.start()
    before = sample("predictor_cache_write_errors_total", model="m-full")
    redis_server.client().client_pause(1000, all=False)  # hold the writer's first flush
    for n in range(20):
        fs.write(WriteOp("m-full", values={f"k{n}": b"v"}))
    dropped = sample("predictor_cache_write_errors_total", model="m-full") - before
    assert dropped >= 14  # at most 5 queued (+1 op taken by the writer)
    await fs.close()


async def test_a_value_that_does_not_decode_is_a_miss(
    store: FeatureStore, redis_server: RedisServer
) -> None:
    cache = PredictionCache(store, "m-corrupt")
    redis_server.client().set(keys.prediction_key("m-corrupt", "a", "x"), b'{"label": 1')
    assert await cache.lookup("a", ["x"]) == [None]
    assert (
        sample("predictor_cache_lookups_total", model="m-corrupt", version="a", result="miss") == 1
    )


async def test_near_cache_answers_repeats_without_a_round_trip(
    redis_server: RedisServer,
) -> None:
    fs = make(redis_server.url(), near_cache_entries=2)
    await fs.start()
    try:
        cache = PredictionCache(fs, "m-near")
        cache.remember("a", [("x", P)])
        await fs.writer.join()
        redis_server.stop()  # from here only the in-process layer can answer
        assert await cache.lookup("a", ["x", "y"]) == [P, None]
        assert sample("predictor_cache_lookups_total", model="m-near", version="a",
                      result="hit") == 1  # fmt: skip
        assert await cache.lookup("b", ["x"]) == [None]  # another version: never shared
        cache.remember("a", [("y", P), ("z", P)])  # cap 2: the oldest (x) is evicted
        assert await cache.lookup("a", ["z", "y", "x"]) == [P, P, None]
    finally:
        redis_server.start()
        await fs.close()
