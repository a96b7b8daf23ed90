"""Workloads: unique texts never repeat, the hot set is skewed like Zipf."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import pytest

from loadtest.corpus import TextPool, hot_set, load_pool, unique_texts
from training import data


def test_unique_texts_never_repeat_past_the_pool() -> None:
    pool = TextPool(["a", "b", "c"], "test")
    sent = list(itertools.islice(unique_texts(pool), 10))
    assert len(set(sent)) == 10
    assert sent[:3] == ["a", "b", "c"]


def test_hot_set_is_skewed_towards_the_first_ranks() -> None:
    pool = TextPool([f"t{i}" for i in range(100)], "test")
    counts = Counter(itertools.islice(hot_set(pool, 20, exponent=1.1, seed=3), 20_000))
    assert set(counts) <= {f"t{i}" for i in range(20)}
    assert counts["t0"] / counts["t1"] == pytest.approx(2**1.1, rel=0.1)
    assert counts["t1"] > counts["t9"] > counts["t19"]
    with pytest.raises(ValueError):
        next(hot_set(pool, 101))


def test_pool_leaves_out_the_models_training_rows(tmp_path: Path) -> None:
    split = {"test_fraction": 0.2, "seed": 5, "limit": 500}
    (tmp_path / "model_card.json").write_text(json.dumps({"split": split}))
    pool = load_pool(tmp_path)
    corpus = data.load_corpus()
    train, _ = data.stratified_split(corpus.labels, 0.2, 5, 500)
    trained_on = {corpus.texts[i] for i in train}
    assert "outside the model's training split" in pool.source
    assert len(pool.texts) == len(corpus) - len(train)
    assert not trained_on & set(pool.texts)
