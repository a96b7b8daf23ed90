"""The prediction cache and the per-user history, in terms of predictions.

`lookup` answers a whole request in one round trip; `remember` queues what
the model just computed (and which user said it) for write-behind. Values
are compact JSON; a value that does not decode is a miss, never an error.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from predictor.featurestore import keys, metrics
from predictor.featurestore.store import FeatureStore, Unavailable
from predictor.featurestore.writer import WriteOp
from predictor.prediction import Prediction

log = logging.getLogger(__name__)


def encode_prediction(p: Prediction) -> bytes:
    return orjson.dumps(
        {
            "label": p.label,
            "score": p.score,
            "probabilities": p.probabilities,
            "truncated": p.truncated,
        }
    )


def decode_prediction(raw: bytes) -> Prediction | None:
    try:
        d = orjson.loads(raw)
        return Prediction(
            label=str(d["label"]),
            score=float(d["score"]),
            probabilities={str(k): float(v) for k, v in d["probabilities"].items()},
            truncated=bool(d.get("truncated", False)),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


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


class PredictionCache:
    """Prediction lookups and writes for one model name, all versions."""

    def __init__(self, store: FeatureStore, model: str) -> None:
        self.store = store
        self.model = model
        self._latency = metrics.CACHE_LOOKUP_LATENCY.labels(model)
        remote = store.backend.name != "memory"
        self._near_cap = store.settings.near_cache_entries if remote else 0
        self._near: OrderedDict[str, Prediction] = OrderedDict()

    def _near_get(self, key: str) -> Prediction | None:
        p = self._near.get(key)
        if p is not None:
            self._near.move_to_end(key)
        return p

    def _near_put(self, key: str, p: Prediction) -> None:
        if self._near_cap:
            self._near[key] = p
            self._near.move_to_end(key)
            while len(self._near) > self._near_cap:
                self._near.popitem(last=False)

    def _count(self, version: str, result: str, n: int) -> None:
        if n:
            metrics.CACHE_LOOKUPS.labels(self.model, version, result).inc(n)

    async def lookup(self, version: str, texts: Sequence[str]) -> list[Prediction | None]:
        """Cached predictions in order, None for misses; all None when the store is out."""
        if not self.store.settings.cache_enabled or not texts:
            return [None] * len(texts)
        ks = [keys.prediction_key(self.model, version, t) for t in texts]
        found = [self._near_get(k) for k in ks]
        todo = [i for i, p in enumerate(found) if p is None]
        near_hits = len(texts) - len(todo)
        if todo:
            start = time.perf_counter()
            try:
                raw = await self.store.get_many([ks[i] for i in todo])
            except Unavailable:
                self._count(version, "hit", near_hits)
                self._count(version, "error", len(todo))
                return found
            finally:
                self._latency.observe(time.perf_counter() - start)
            for i, r in zip(todo, raw, strict=True):
                p = decode_prediction(r) if r is not None else None
                if p is not None:
                    found[i] = p
                    self._near_put(ks[i], p)
        hits = sum(p is not None for p in found)
        self._count(version, "hit", hits)
        self._count(version, "miss", len(texts) - hits)
        return found

    def remember(
        self,
        version: str,
        computed: Sequence[tuple[str, Prediction]],
        authored: Sequence[Authored] = (),
        extra: dict[str, bytes] | None = None,
    ) -> None:
        """Queue freshly computed predictions, user-history entries and `extra` values
        (fetched tweets) as one write-behind op. Only pass complete, successful results."""
        op = WriteOp(self.model, values=dict(extra or {}))
        if self.store.settings.cache_enabled:
            for text, prediction in computed:
                key = keys.prediction_key(self.model, version, text)
                op.values[key] = encode_prediction(prediction)
                self._near_put(key, prediction)
        now = time.time()
        for a in authored:
            entry = HistoryEntry(
                a.tweet_time or now, a.tweet_id, a.prediction.label, a.prediction.score
            )
            op.history.setdefault(keys.history_key(a.username), []).append(entry.encode())
        self.store.write(op)

    async def history(self, username: str, limit: int) -> list[HistoryEntry]:
        """A user's recorded predictions, oldest first, latest per tweet (re-predictions
        by a newer model version replace older ones)."""
        raw = await self.store.read_history(keys.history_key(username), limit)
        latest: dict[str, HistoryEntry] = {}
        for r in raw:
            entry = HistoryEntry.decode(r)
            if entry is not None:
                latest.pop(entry.tweet_id, None)
                latest[entry.tweet_id] = entry
        return sorted(latest.values(), key=lambda e: e.t)
