"""FeatureStore, PredictionCache and UserHistory over a real Redis: fail-open, breaker,
write-behind."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from predictor.featurestore import keys
from predictor.featurestore.history import Authored, UserHistory
from predictor.featurestore.predictions import PredictionCache
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
    fields: dict[str, object] = {
        "key_prefix": "",
        "breaker_failures": 2,
        "breaker_reset_s": 0.3,
        "health_interval_s": 0.2,
        "cache_ttl_seconds": 3600,
        "near_cache_entries": 0,  # 0: watch Redis itself
        **kw,
    }
    settings = FeatureStoreSettings(redis_url=SecretStr(url), **fields)  # type: ignore[arg-type]
    return FeatureStore(settings)


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[FeatureStore]:
    fs = make(redis_server.url())
    await fs.start()
    yield fs
    await fs.close()


async def test_hits_are_per_version(store: FeatureStore, redis_server: RedisServer) -> None:
    cache = PredictionCache(store, "m-versions")
    assert await cache.lookup("a", "fp32", ["hello"]) == [None]
    cache.remember("a", "fp32", [("hello", P)])
    await store.writer.join()
    assert await cache.lookup("a", "fp32", ["  hello "]) == [P]
    assert await cache.lookup("b", "fp32", ["hello"]) == [None], (
        "a new version must not see old entries"
    )
    assert (
        sample("predictor_cache_lookups_total", model="m-versions", version="a", result="hit") == 1
    )
    assert (
        sample("predictor_cache_lookups_total", model="m-versions", version="b", result="miss") == 1
    )
    (key,) = redis_server.client().keys("*")
    assert key == keys.prediction_key("m-versions", "a", "fp32", "hello").encode()
    assert 3590 < redis_server.client().ttl(key) <= 3600


async def test_precision_is_part_of_the_key(store: FeatureStore) -> None:
    cache = PredictionCache(store, "m-precision")
    cache.remember("a", "fp16", [("hello", P)])
    await store.writer.join()
    assert await cache.lookup("a", "fp16", ["hello"]) == [P]
    assert await cache.lookup("a", "fp32", ["hello"]) == [None], "fp16 scores are not fp32's"


async def test_history_is_written_behind_and_deduplicated(store: FeatureStore) -> None:
    history = UserHistory(store, "m-hist")
    neg = Prediction("negative", 0.6, {"negative": 0.6, "neutral": 0.3, "positive": 0.1})
    history.record("a", [Authored("Bob", "1", 100.0, P), Authored("bob", "2", 50.0, neg)])
    history.record("b", [Authored("bob", "1", 100.0, neg)])  # re-predicted by version b
    await store.writer.join()
    entries = await history.read("BOB", 100)
    assert [(e.tweet_id, e.label) for e in entries] == [("2", "negative"), ("1", "negative")]


async def test_redis_down_is_unavailable_then_breaker_skips_then_recovers(
    store: FeatureStore, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = PredictionCache(store, "m-down")
    cache.remember("a", "fp32", [("x", P)])
    await store.writer.join()
    redis_server.stop()
    errors_before = sample(
        "predictor_cache_lookups_total", model="m-down", version="a", result="error"
    )
    with caplog.at_level(logging.WARNING, "predictor.featurestore.store"):
        results = [await cache.lookup("a", "fp32", ["x", "y"]) for _ in range(20)]
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
    cache.remember("a", "fp32", [("x", P)])  # the restarted Redis is empty; write again
    await store.writer.join()
    assert await cache.lookup("a", "fp32", ["x"]) == [P]


async def test_wrong_password_fails_open(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = RedisServer(tmp_path_factory.mktemp("r"), password="secret").start()
    try:
        fs = make(server.url(password="nope"))
        await fs.start()
        cache = PredictionCache(fs, "m-auth")
        before = sample("predictor_cache_write_errors_total", model="m-auth", version="a")
        assert await cache.lookup("a", "fp32", ["x"]) == [None]
        cache.remember("a", "fp32", [("x", P), ("y", P)])
        await fs.writer.join()
        lost = sample("predictor_cache_write_errors_total", model="m-auth", version="a") - before
        assert lost == 2
        assert not fs.up
        await fs.close()
        assert server.client().dbsize() == 0
    finally:
        server.stop()


async def test_writes_are_batched_and_flushed_on_close(redis_server: RedisServer) -> None:
    fs = make(redis_server.url(), write_batch_size=20, health_interval_s=3600)
    await fs.start()
    fs.write(WriteOp("m-batch", "a", values={"warm": b"v"}))  # the write connection is open
    await fs.writer.join()
    raw = redis_server.client()
    raw.config_resetstat()
    before = raw.info("stats")["total_reads_processed"]  # each INFO is one read event too
    for n in range(50):
        fs.write(WriteOp("m-batch", "a", values={f"k{n}": b"v"}))
    await fs.writer.join()
    reads = raw.info("stats")["total_reads_processed"] - before - 1
    assert raw.info("commandstats")["cmdstat_set"]["calls"] == 50
    assert reads == 3, "50 entries queued at once, 20 per flush: three pipelined round trips"
    for n in range(50, 60):
        fs.write(WriteOp("m-batch", "a", values={f"k{n}": b"v"}))
    await fs.close()  # must flush what is queued before releasing the connections
    assert raw.dbsize() == 61
    assert all(0 < raw.ttl(k) <= 3600 for k in raw.keys("*"))


async def test_full_queue_drops_and_counts(redis_server: RedisServer) -> None:
    fs = make(redis_server.url(), write_queue_size=5)
    await fs.start()
    before = sample("predictor_cache_write_errors_total", model="m-full", version="a")
    for n in range(20):  # queued without awaiting: the writer takes nothing in between
        fs.write(WriteOp("m-full", "a", values={f"k{n}": b"v"}))
    dropped = sample("predictor_cache_write_errors_total", model="m-full", version="a") - before
    assert dropped == 15, "the bound is 5 entries: the other 15 are dropped and counted"
    await fs.close()
    stored = sorted(k.decode() for k in redis_server.client().keys("*") if isinstance(k, bytes))
    assert stored == [f"k{n}" for n in range(5)], "the queued ones are flushed, in order"


async def test_a_value_that_does_not_decode_is_a_miss(
    store: FeatureStore, redis_server: RedisServer
) -> None:
    cache = PredictionCache(store, "m-corrupt")
    redis_server.client().set(keys.prediction_key("m-corrupt", "a", "fp32", "x"), b'{"label": 1')
    assert await cache.lookup("a", "fp32", ["x"]) == [None]
    assert (
        sample("predictor_cache_lookups_total", model="m-corrupt", version="a", result="miss") == 1
    )


async def test_near_cache_answers_repeats_without_a_round_trip(
    redis_server: RedisServer,
) -> None:
    fs = make(redis_server.url())
    await fs.start()
    try:
        cache = PredictionCache(fs, "m-near", near_entries=2)
        cache.remember("a", "fp32", [("x", P)])
        await fs.writer.join()
        redis_server.stop()  # from here only the in-process layer can answer
        assert await cache.lookup("a", "fp32", ["x", "y"]) == [P, None]
        assert sample("predictor_cache_lookups_total", model="m-near", version="a",
                      result="hit") == 1  # fmt: skip
        assert await cache.lookup("b", "fp32", ["x"]) == [None]  # another version: never shared
        cache.remember("a", "fp32", [("y", P), ("z", P)])  # cap 2: the oldest (x) is evicted
        assert await cache.lookup("a", "fp32", ["z", "y", "x"]) == [P, P, None]
    finally:
        redis_server.start()
        await fs.close()
