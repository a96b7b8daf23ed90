"""Per-user history: the one owner of what is recorded about a user and how it is read.

Every prediction of a tweet with a known author is appended (write-behind) to
that user's capped list; the users route reads it back. The list lives only
in the shared store and is never kept in process: with several replicas a
per-pod copy would answer with whatever that pod happened to see, so every
read goes to the store (one LRANGE on one slot, the key is hash-tagged by
user) and two pods return the same history.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from predictor.featurestore import keys
from predictor.featurestore.store import FeatureStore
from predictor.featurestore.writer import WriteOp
from predictor.prediction import Prediction


@dataclass(frozen=True)
class HistoryEntry:
    """One prediction of one user's tweet: when it was said, which tweet, what it meant."""

    t: float  # tweet time (Unix seconds), or the prediction time when the tweet has none
    tweet_id: str
    label: str
    score: float

    def encode(self) -> bytes:
        return orjson.dumps(
            {"t": self.t, "id": self.tweet_id, "label": self.label, "score": self.score}
        )

    @classmethod
    def decode(cls, raw: bytes) -> HistoryEntry | None:
        try:
            d = orjson.loads(raw)
            return cls(float(d["t"]), str(d["id"]), str(d["label"]), float(d["score"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Authored:
    """A prediction whose text came from a known author's tweet."""

    username: str
    tweet_id: str
    tweet_time: float | None
    prediction: Prediction


class UserHistory:
    """Records and reads per-user prediction histories in the shared store."""

    def __init__(self, store: FeatureStore, model: str) -> None:
        self.store = store
        self.model = model

    @property
    def cap(self) -> int:
        return self.store.history_cap

    def record(self, version: str, authored: Sequence[Authored]) -> None:
        """Queue one entry per authored prediction for write-behind (complete results only)."""
        if not authored:
            return
        op = WriteOp(self.model, version)
        now = time.time()
        for a in authored:
            entry = HistoryEntry(
                a.tweet_time or now, a.tweet_id, a.prediction.label, a.prediction.score
            )
            op.history.setdefault(keys.history_key(a.username), []).append(entry.encode())
        self.store.write(op)

    async def read(self, username: str, limit: int | None = None) -> list[HistoryEntry]:
        """A user's recorded predictions, oldest first, latest per tweet (re-predictions
        by a newer model version replace older ones); 503 while the store is unavailable."""
        raw = await self.store.read_history(keys.history_key(username), limit or self.cap)
        latest: dict[str, HistoryEntry] = {}
        for r in raw:
            entry = HistoryEntry.decode(r)
            if entry is not None:
                latest.pop(entry.tweet_id, None)
                latest[entry.tweet_id] = entry
        return sorted(latest.values(), key=lambda e: e.t)
