"""Resolving a request's tweet URLs: cache first, one fetch per distinct tweet, clear errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from predictor.errors import BadInput, NotFound
from predictor.featurestore import keys
from predictor.featurestore.settings import FeatureStoreSettings
from predictor.featurestore.store import FeatureStore
from predictor.featurestore.writer import WriteOp
from predictor.sources.base import Tweet
from predictor.sources.resolver import TweetResolver
from predictor.sources.x_api import XApiSource
from tests.fixtures.fake_x_api import TOKEN, FakeXApi

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def store() -> AsyncIterator[FeatureStore]:
    fs = FeatureStore(FeatureStoreSettings(redis_url=None))
    await fs.start()
    yield fs
    await fs.close()


def resolver(api: FakeXApi, store: FeatureStore) -> TweetResolver:
    return TweetResolver(XApiSource(api.url, TOKEN, timeout_s=2, max_concurrency=2), store)


async def test_cached_tweets_skip_the_source(fake_x_api: FakeXApi, store: FeatureStore) -> None:
    a = fake_x_api.add("1", "first", "alice")
    b = fake_x_api.add("2", "second", "bob")
    res = resolver(fake_x_api, store)
    try:
        got = await res.resolve([("i0", a), ("i1", b), ("i2", a.replace("x.com", "twitter.com"))])
        assert [(r.tweet.text, r.fresh) for r in got] == [
            ("first", True),
            ("second", True),
            ("first", True),
        ]
        assert len(fake_x_api.requests) == 2, "one fetch per distinct tweet"
        await store.writer.join()  # the resolver queued what it fetched itself
        again = await res.resolve([("i0", b), ("i1", a)])
        assert [(r.tweet.author, r.fresh) for r in again] == [("bob", False), ("alice", False)]
        assert len(fake_x_api.requests) == 2
    finally:
        await res.close()


async def test_errors_name_the_instance(fake_x_api: FakeXApi, store: FeatureStore) -> None:
    ok = fake_x_api.add("1", "first", "alice")
    res = resolver(fake_x_api, store)
    try:
        with pytest.raises(NotFound, match=r"^instances\[1\]\.tweet_url: tweet 9 not found"):
            await res.resolve(
                [("instances[0].tweet_url", ok), ("instances[1].tweet_url", "x.com/a/status/9")]
            )
        with pytest.raises(BadInput, match=r"instances\[1\]\.tweet_url must be an x.com"):
            await res.resolve(
                [("instances[0].tweet_url", ok), ("instances[1].tweet_url", "https://t.co/x")]
            )
    finally:
        await res.close()


async def test_no_token_says_so_but_cached_tweets_still_resolve(store: FeatureStore) -> None:
    res = TweetResolver(None, store)
    with pytest.raises(BadInput, match=r"no bearer token is configured.*PREDICTOR_X_BEARER_TOKEN"):
        await res.resolve([("i0", "https://x.com/a/status/1")])
    cached = Tweet("5", "from the cache", "carol")
    store.write(WriteOp("m", "", values={keys.tweet_key("x", "5"): cached.encode()}))
    await store.writer.join()
    (got,) = await res.resolve([("i0", "https://x.com/carol/status/5")])
    assert got.tweet == cached and not got.fresh
