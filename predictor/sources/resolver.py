"""Tweet URLs of one request -> tweets, through the feature store first.

The one owner of the tweet family in the feature store: it alone reads and
writes tweet keys. All URLs are parsed before anything is fetched (a bad one
fails the request at once), cached tweets come back in one round trip, only
the rest go to the source, concurrently and once per distinct id, and what
was fetched is queued for write-behind as soon as it arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from predictor.errors import BadInput, PredictorError
from predictor.featurestore import keys
from predictor.featurestore.store import FeatureStore, Unavailable
from predictor.featurestore.writer import WriteOp
from predictor.sources.base import Tweet, TweetSource
from predictor.sources.metrics import TWEET_SOURCE_REQUESTS
from predictor.sources.settings import TweetSourceSettings
from predictor.sources.urls import parse_tweet_url
from predictor.sources.x_api import XApiSource

NO_TOKEN = (
    "tweet_url needs the X API, and no bearer token is configured: set "
    "PREDICTOR_X_BEARER_TOKEN, or send the tweet's text instead"
)


@dataclass(frozen=True)
class Resolved:
    tweet: Tweet
    fresh: bool  # fetched from the source for this request, not from the cache


def create_source(settings: TweetSourceSettings) -> TweetSource | None:
    """The X API source when a token is configured, else none (tweet URLs are a 400)."""
    if settings.x_bearer_token is None:
        return None
    return XApiSource(
        settings.x_api_base_url,
        settings.x_bearer_token.get_secret_value(),
        timeout_s=settings.x_timeout_s,
        max_concurrency=settings.x_max_concurrency,
    )


class TweetResolver:
    """Resolves the tweet_url instances of a request."""

    def __init__(
        self, source: TweetSource | None, store: FeatureStore | None = None, model: str = ""
    ) -> None:
        self.source = source
        self.store = store
        self.model = model  # labels lost writes in predictor_cache_write_errors_total
        self.source_name = source.name if source is not None else "x"

    async def resolve(self, urls: Sequence[tuple[str, str]]) -> list[Resolved]:
        """`(where, url)` pairs -> tweets in the same order; `where` names the field in errors."""
        ids = [parse_tweet_url(url, where).tweet_id for where, url in urls]
        cached = await self._cached(ids)
        missing = sorted({i for i in ids if i not in cached})
        fetched: dict[str, Tweet] = {}
        if missing:
            if self.source is None:
                raise BadInput(NO_TOKEN)
            source = self.source
            results = await asyncio.gather(
                *(source.fetch(i) for i in missing), return_exceptions=True
            )
            for tweet_id, result in zip(missing, results, strict=True):
                if isinstance(result, BaseException):
                    where = next(w for (w, _), i in zip(urls, ids, strict=True) if i == tweet_id)
                    raise _located(result, where)
                fetched[tweet_id] = result
            self._remember(fetched.values())
        hits = len(ids) - sum(1 for i in ids if i in fetched)
        if hits:
            TWEET_SOURCE_REQUESTS.labels(self.source_name, "cached").inc(hits)
        return [
            Resolved(fetched[i], True) if i in fetched else Resolved(cached[i], False) for i in ids
        ]

    async def _cached(self, ids: list[str]) -> dict[str, Tweet]:
        if self.store is None:
            return {}
        try:
            raw = await self.store.get_many([keys.tweet_key(self.source_name, i) for i in ids])
        except Unavailable:
            return {}
        found: dict[str, Tweet] = {}
        for tweet_id, value in zip(ids, raw, strict=True):
            tweet = Tweet.decode(value) if value is not None else None
            if tweet is not None:
                found[tweet_id] = tweet
        return found

    def _remember(self, tweets: Iterable[Tweet]) -> None:
        """Queue freshly fetched tweets for write-behind; they belong to no model version."""
        if self.store is not None:
            values = {keys.tweet_key(self.source_name, t.id): t.encode() for t in tweets}
            self.store.write(WriteOp(self.model, "", values))

    async def close(self) -> None:
        if self.source is not None:
            await self.source.close()


def _located(exc: BaseException, where: str) -> BaseException:
    """The same typed error with the request field it came from in front."""
    if isinstance(exc, PredictorError) and type(exc).__init__ is PredictorError.__init__:
        return type(exc)(f"{where}: {exc.message}")
    return exc
