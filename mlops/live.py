"""Prediction distributions: the card's held-out reference and a live window of predictions.

Two live sources, both per model version:
- Prometheus (`from_prometheus`): every pod, any time window. Needs the predictor
  to count answers by label (`predictor_predictions_total{model,version,label}`)
  and to observe top-class scores (`predictor_prediction_score` histogram).
- The feature store (`from_featurestore`): the predictions Redis still caches for
  that version, i.e. distinct texts answered within the cache TTL: one pod's sidecar,
  or the shared store (standalone, TLS, Sentinel, Cluster) every replica writes to.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mlops.prom import Prometheus, selector
from mlops.store import StoreError, scan_predictions
from predictor.featurestore.predictions import decode_prediction
from predictor.featurestore.settings import FeatureStoreSettings
from predictor.modelcard import ServingCard

LABEL_COUNTER = "predictor_predictions_total"
SCORE_HISTOGRAM = "predictor_prediction_score"


class NoData(RuntimeError):
    """The source has nothing to compare for this model version."""


@dataclass(frozen=True)
class Distribution:
    """Predicted-label counts, and top-class score counts per bin `(le[i-1], le[i]]`."""

    labels: dict[str, float]
    score_le: tuple[float, ...] = ()
    score_counts: tuple[float, ...] = ()

    @property
    def n(self) -> float:
        return float(sum(self.labels.values()))


def reference(card: ServingCard) -> Distribution:
    """The held-out reference `training.build` stores in the card."""
    ref = (card.model_extra or {}).get("reference")
    if not isinstance(ref, dict):
        raise NoData(
            f"model card {card.name} {card.version} has no `reference`: it was built before "
            "training.build stored one; rebuild it"
        )
    return Distribution(
        {str(k): float(v) for k, v in ref["predicted"].items()},
        tuple(float(x) for x in ref["score_le"]),
        tuple(float(x) for x in ref["score_counts"]),
    )


def _differences(cumulative: Sequence[float]) -> list[float]:
    """Cumulative counts to per-bin counts (a counter reset can not make one negative)."""
    return [max(0.0, float(d)) for d in np.diff(np.asarray(cumulative, dtype=float), prepend=0.0)]


def per_bin(cumulative: dict[float, float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Prometheus `le` buckets (cumulative) to per-bin counts, edges ascending."""
    edges = tuple(sorted(cumulative))
    return edges, tuple(_differences([cumulative[e] for e in edges]))


def _cumulative_at(d: Distribution, edges: Sequence[float]) -> list[float]:
    cum = np.cumsum(d.score_counts)
    idx = [d.score_le.index(e) for e in edges]
    return [float(cum[i]) for i in idx]


def align_scores(
    ref: Distribution, live: Distribution
) -> tuple[tuple[float, ...], list[float], list[float]]:
    """Both score histograms on the `le` edges they share, plus a remainder bin for the rest.

    Cumulative buckets can be cut at any shared edge, so a predictor whose buckets
    differ from the card's still compares on the edges both have.
    """
    shared = sorted(set(ref.score_le) & set(live.score_le))
    if not shared:
        raise NoData(f"no shared score buckets: card {ref.score_le}, live {live.score_le}")
    r = _differences([*_cumulative_at(ref, shared), sum(ref.score_counts)])
    q = _differences([*_cumulative_at(live, shared), sum(live.score_counts)])
    edges = (*shared, math.inf)
    if r[-1] == 0 and q[-1] == 0:  # nothing above the last shared edge (usually 1.0)
        return edges[:-1], r[:-1], q[:-1]
    return edges, r, q


def from_prometheus(prom: Prometheus, model: str, version: str, window: str) -> Distribution:
    """Answers counted by label and score bin over the last `window` (e.g. "1h")."""
    sel = selector(model=model, version=version)
    rows = prom.vector(f"sum by (label) (increase({LABEL_COUNTER}{sel}[{window}]))")
    labels = {m.get("label", ""): v for m, v in rows}
    if not labels or sum(labels.values()) <= 0:
        raise NoData(
            f"Prometheus has no {LABEL_COUNTER} for {model} {version} in the last {window} "
            "(no traffic, or a predictor that does not export it)"
        )
    buckets = prom.vector(f"sum by (le) (increase({SCORE_HISTOGRAM}_bucket{sel}[{window}]))")
    edges, counts = per_bin({float(m["le"]): v for m, v in buckets}) if buckets else ((), ())
    return Distribution(labels, edges, counts)


def summarise(
    predictions: Iterable[tuple[str, float]], labels: Sequence[str], score_le: Sequence[float]
) -> Distribution:
    """(label, top score) pairs binned like the reference."""
    label_counts: Counter[str] = Counter({label: 0 for label in labels})
    bins = np.zeros(len(score_le), dtype=np.int64)
    for label, score in predictions:
        label_counts[label] += 1
        bins[min(int(np.searchsorted(score_le, score, side="left")), len(score_le) - 1)] += 1
    return Distribution(
        {k: float(v) for k, v in label_counts.items()},
        tuple(score_le),
        tuple(float(b) for b in bins),
    )


def from_featurestore(
    store: FeatureStoreSettings,
    card: ServingCard,
    version: str,
    max_entries: int = 200_000,
) -> Distribution:
    """The predictions the feature store caches for `version` (distinct texts within the
    TTL), read through the predictor's own backend code (mlops.store): any topology."""
    try:
        raw = scan_predictions(store, card.name, version, max_entries)
    except StoreError as exc:
        raise NoData(str(exc)) from exc
    found = [(p.label, p.score) for p in map(decode_prediction, raw) if p is not None]
    if not found:
        raise NoData(f"the feature store holds no predictions of {card.name} {version}")
    return summarise(found, card.labels, reference(card).score_le)
