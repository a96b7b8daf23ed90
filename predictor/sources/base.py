"""The tweet-source interface: turn a tweet id into its text and author."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class Tweet:
    """What the predictor needs from a tweet."""

    id: str
    text: str
    author: str | None  # username, without '@'
    created_at: float | None = None  # Unix seconds

    def encode(self) -> bytes:
        return orjson.dumps(
            {"id": self.id, "text": self.text, "author": self.author, "t": self.created_at}
        )

    @classmethod
    def decode(cls, raw: bytes) -> Tweet | None:
        try:
            d = orjson.loads(raw)
            t = d.get("t")
            return cls(
                str(d["id"]), str(d["text"]), d.get("author"), None if t is None else float(t)
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None


class TweetSource(abc.ABC):
    """Fetches tweets; raises the predictor's typed errors (NotFound, UpstreamError,
    UpstreamUnavailable, BadInput) so their status codes need no mapping here."""

    #: short name for metrics and cache keys
    name: str = "source"

    @abc.abstractmethod
    async def fetch(self, tweet_id: str) -> Tweet:
        """The tweet with this id."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
