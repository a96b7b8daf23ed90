"""The prediction cache: lookups and writes in terms of predictions.

`lookup` answers a whole request in one round trip (one pipelined MGET per
node in a cluster); `remember` queues what the model just computed for
write-behind. Values are compact JSON; a value that does not decode is a
miss, never an error.

Near cache: with a remote store, predictions are also kept in an in-process
LRU. That stays correct when every replica shares one Redis, because a key
names an immutable answer (model, version, precision, text): nothing can
make it stale, a new version is a new key. Only predictions go there; fetched
tweets and per-user histories are always read from the store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import orjson

from predictor.featurestore import keys, metrics
from predictor.featurestore.lru import LRU
from predictor.featurestore.store import FeatureStore, Unavailable
from predictor.featurestore.writer import WriteOp
from predictor.prediction import Prediction
from predictor.tracing import Tracing

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


class PredictionCache:
    """Prediction lookups and writes for one model name, all versions and precisions."""

    def __init__(
        self,
        store: FeatureStore,
        model: str,
        *,
        enabled: bool = True,
        near_entries: int = 0,
        tracing: Tracing | None = None,
    ) -> None:
        """`near_entries` is the in-process LRU in front of a remote store (0: none; the
        memory backend already is in process)."""
        self.store = store
        self.tracing = tracing or Tracing.off()
        self.model = model
        self.enabled = enabled
        self._near: LRU[Prediction] = LRU(0 if store.in_process else near_entries)

    def _count(self, version: str, result: str, n: int) -> None:
        if n:
            metrics.CACHE_LOOKUPS.labels(self.model, version, result).inc(n)

    async def lookup(
        self, version: str, precision: str, texts: Sequence[str]
    ) -> list[Prediction | None]:
        """Cached predictions in order, None for misses; near hits only when the store is out."""
        if not self.enabled or not texts:
            return [None] * len(texts)
        with self.tracing.span("predictor.cache.lookup") as span:
            found, near_hits, error = await self._lookup(version, precision, texts)
            if span.is_recording():
                hits = sum(p is not None for p in found)
                span.set_attributes(
                    {
                        "predictor.cache.backend": self.store.backend.name,
                        "predictor.cache.hits": hits,
                        "predictor.cache.near_hits": near_hits,
                        "predictor.cache.misses": len(texts) - hits,
                        "predictor.cache.unavailable": error,
                    }
                )
            return found

    async def _lookup(
        self, version: str, precision: str, texts: Sequence[str]
    ) -> tuple[list[Prediction | None], int, bool]:
        """(predictions, near hits, whether the store failed)."""
        ks = [keys.prediction_key(self.model, version, precision, t) for t in texts]
        found = [self._near.get(k) for k in ks]
        todo = [i for i, p in enumerate(found) if p is None]
        near_hits = len(texts) - len(todo)
        if todo:
            start = time.perf_counter()
            try:
                raw = await self.store.get_many([ks[i] for i in todo])
            except Unavailable:
                self._count(version, "hit", near_hits)
                self._count(version, "error", len(todo))
                return found, near_hits, True
            finally:
                metrics.CACHE_LOOKUP_LATENCY.labels(self.model, version).observe(
                    time.perf_counter() - start
                )
            for i, r in zip(todo, raw, strict=True):
                p = decode_prediction(r) if r is not None else None
                if p is not None:
                    found[i] = p
                    self._near.put(ks[i], p)
        hits = sum(p is not None for p in found)
        self._count(version, "hit", hits)
        self._count(version, "miss", len(texts) - hits)
        return found, near_hits, False

    def remember(
        self, version: str, precision: str, computed: Sequence[tuple[str, Prediction]]
    ) -> None:
        """Queue freshly computed predictions as one write-behind op (complete results only)."""
        if not self.enabled or not computed:
            return
        op = WriteOp(self.model, version)
        for text, prediction in computed:
            key = keys.prediction_key(self.model, version, precision, text)
            op.values[key] = encode_prediction(prediction)
            self._near.put(key, prediction)
        self.store.write(op)
