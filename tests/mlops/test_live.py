from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mlops.live import (
    Distribution,
    NoData,
    align_scores,
    from_featurestore,
    per_bin,
    reference,
    summarise,
)
from mlops.store import store_settings
from predictor.modelcard import ServingCard
from tests.mlops.conftest import StoreBacked, card, with_card

LE = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


def test_the_card_reference_describes_the_held_out_split(stable_dir: Path) -> None:
    ref = reference(ServingCard.read(stable_dir))
    split = card(stable_dir)["split"]
    assert isinstance(split, dict)
    assert ref.n == split["n_test"] == sum(ref.score_counts)
    assert list(ref.labels) == ["negative", "neutral", "positive"]
    assert ref.score_le == LE


def test_a_card_without_reference_says_to_rebuild(stable_dir: Path, tmp_path: Path) -> None:
    old = with_card(stable_dir, tmp_path / "old", reference=None)
    with pytest.raises(NoData, match="rebuild"):
        reference(ServingCard.read(old))


def test_prometheus_buckets_become_per_bin_counts() -> None:
    edges, counts = per_bin({0.5: 3.0, 1.0: 10.0, float("inf"): 10.0, 0.9: 7.0})
    assert edges == (0.5, 0.9, 1.0, float("inf"))
    assert counts == (3.0, 4.0, 3.0, 0.0)


def test_histograms_with_other_buckets_compare_on_the_shared_edges() -> None:
    ref = Distribution({"a": 1}, LE, (1, 2, 3, 4, 5, 6, 7, 8))
    # the live side only has 0.5, 0.8 and +Inf: (.., .5] (.5, .8] (.8, 1]
    live = Distribution({"a": 1}, (0.5, 0.8, float("inf")), (10, 20, 30))
    edges, r, q = align_scores(ref, live)
    assert edges == (0.5, 0.8, float("inf"))
    assert r == [1 + 2, 3 + 4 + 5, 6 + 7 + 8]
    assert q == [10, 20, 30]


def test_summarise_bins_scores_as_prometheus_le_does() -> None:
    d = summarise([("a", 0.4), ("a", 0.41), ("b", 1.0), ("b", 0.95)], ["a", "b", "c"], LE)
    assert d.labels == {"a": 2, "b": 2, "c": 0}
    assert d.score_counts == (1, 1, 0, 0, 0, 0, 1, 1)


def test_featurestore_window_counts_what_the_predictor_answered(
    fresh_store: StoreBacked, stable_dir: Path
) -> None:
    texts = [f"live text number {i} about {w}" for i, w in enumerate(["rain", "cake"] * 40)]
    answers = fresh_store.answer(texts + texts[:10])  # repeats are cache hits, stored once
    fresh_store.wait_stored(len(texts))
    window = from_featurestore(store_settings(fresh_store.redis.url()),
                               ServingCard.read(stable_dir), fresh_store.version)  # fmt: skip
    expected = Counter(a["label"] for a in answers[: len(texts)])
    assert window.labels == {k: float(expected.get(k, 0)) for k in window.labels}
    bins = np.searchsorted(LE, [a["score"] for a in answers[: len(texts)]], side="left")
    assert window.score_counts == tuple(float(c) for c in np.bincount(bins, minlength=len(LE)))


def test_featurestore_window_of_an_unserved_version_is_no_data(
    fresh_store: StoreBacked, stable_dir: Path
) -> None:
    fresh_store.answer(["something for the stable version"])
    fresh_store.wait_stored(1)
    with pytest.raises(NoData, match="no predictions"):
        from_featurestore(
            store_settings(fresh_store.redis.url()), ServingCard.read(stable_dir), "never-served"
        )
