"""X API v2 tweet source: `GET /2/tweets/:id?expansions=author_id`.

Maps every way the API can fail to one typed error, with the API's own
reason in the message: unknown or hidden tweet -> 404, rate limit -> 503
saying when it resets, bad token or 5xx -> 502, unreachable -> 503.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import httpx

from predictor.errors import NotFound, PredictorError, UpstreamError, UpstreamUnavailable
from predictor.sources.base import Tweet, TweetSource
from predictor.sources.metrics import TWEET_SOURCE_REQUESTS

PARAMS = {"expansions": "author_id", "tweet.fields": "created_at", "user.fields": "username"}
_MISSING = (
    "https://api.twitter.com/2/problems/resource-not-found",
    "https://api.twitter.com/2/problems/not-authorized-for-resource",
)


def _detail(resp: httpx.Response) -> str:
    """The API's explanation: `detail`/`title` of a problem, or the first of `errors`."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200] or resp.reason_phrase
    if isinstance(body, dict):
        errors = body.get("errors")
        first = errors[0] if isinstance(errors, list) and errors else body
        if isinstance(first, dict):
            return str(first.get("detail") or first.get("message") or first.get("title") or body)
    return str(body)[:200]


def _created_at(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class XApiSource(TweetSource):
    """One pooled httpx client; at most `max_concurrency` requests in flight."""

    name = "x"

    def __init__(
        self, base_url: str, bearer_token: str, *, timeout_s: float, max_concurrency: int
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {bearer_token}", "User-Agent": "tweet-sentiment"},
            timeout=timeout_s,
        )
        self._slots = asyncio.Semaphore(max_concurrency)

    def _count(self, outcome: str) -> None:
        TWEET_SOURCE_REQUESTS.labels(self.name, outcome).inc()

    async def fetch(self, tweet_id: str) -> Tweet:
        try:
            async with self._slots:
                resp = await self._client.get(f"/2/tweets/{tweet_id}", params=PARAMS)
        except httpx.HTTPError as exc:
            self._count("unreachable")
            raise UpstreamUnavailable(
                f"X API unreachable ({type(exc).__name__}); retry later"
            ) from None
        try:
            tweet = self._parse(tweet_id, resp)
        except PredictorError as err:
            self._count(_OUTCOMES.get(type(err), "upstream_error"))
            raise
        self._count("ok")
        return tweet

    def _parse(self, tweet_id: str, resp: httpx.Response) -> Tweet:
        status = resp.status_code
        if status == 429:
            reset = resp.headers.get("x-rate-limit-reset", "")
            wait = (
                f"; it resets in {max(0, int(reset) - int(time.time()))} s"
                if reset.isdigit()
                else ""
            )
            raise _RateLimited(f"X API rate limit reached ({_detail(resp)}){wait}")
        if status in (401, 403):
            raise _Unauthorized(
                f"X API refused the configured bearer token ({status}: {_detail(resp)})"
            )
        if status == 404:
            raise NotFound(f"tweet {tweet_id} not found ({_detail(resp)})")
        if status != 200:
            raise UpstreamError(f"X API answered {status}: {_detail(resp)}")
        try:
            body: dict[str, Any] = resp.json()
        except ValueError:
            raise UpstreamError("X API answered 200 with a body that is not JSON") from None
        data = body.get("data")
        if not isinstance(data, dict):
            errors = body.get("errors") or []
            if any(isinstance(e, dict) and e.get("type") in _MISSING for e in errors):
                raise NotFound(f"tweet {tweet_id} not found or not visible: {_detail(resp)}")
            raise UpstreamError(f"X API answered without the tweet: {_detail(resp)}")
        text = data.get("text")
        if not isinstance(text, str):
            raise UpstreamError(f"X API answered tweet {tweet_id} without its text")
        users = body.get("includes", {}).get("users", [])
        author_id = data.get("author_id")
        author = next(
            (u.get("username") for u in users if isinstance(u, dict) and u.get("id") == author_id),
            None,
        )
        return Tweet(
            str(data.get("id", tweet_id)), text, author, _created_at(data.get("created_at"))
        )

    async def close(self) -> None:
        await self._client.aclose()


class _RateLimited(UpstreamUnavailable):
    """429 from the X API."""


class _Unauthorized(UpstreamError):
    """401/403 from the X API: the token is wrong, not the request."""


_OUTCOMES: dict[type[PredictorError], str] = {
    NotFound: "not_found",
    _RateLimited: "rate_limited",
    _Unauthorized: "unauthorized",
    UpstreamError: "upstream_error",
}
