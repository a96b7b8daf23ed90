"""Workloads: unique texts never repeat, the hot set is skewed like Zipf."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import pytest

from loadtest.corpus import TextPool, hot_set, load_pool, load_workloads, short_half, unique_texts
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


def test_short_half_keeps_the_shorter_half_in_pool_order() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    texts = ["a b c d", "a", "a b c d e f", "a b", "a b c", "x y"]  # 4 1 6 2 3 2 tokens
    short = short_half(TextPool(texts, "test"), tok)
    assert short.texts == ["a", "a b", "x y"]  # lengths 1, 2, 2; the order of the pool
    assert "3 texts of 1-2 tokens" in short.source and "max 6" in short.source


def test_workloads_are_the_held_out_pool_and_its_shorter_half(tmp_path: Path) -> None:
    split = {"test_fraction": 0.2, "seed": 5, "limit": 500}
    card = {"split": split, "name": "m", "version": "1", "labels": ["a", "b"],
            "max_seq_length": 32, "pad_token_id": 0, "pad_token": "[PAD]"}  # fmt: skip
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    from training.encoder import packaged_encoder_dir

    (tmp_path / "tokenizer.json").write_bytes(
        (packaged_encoder_dir() / "tokenizer.json").read_bytes()
    )
    pools = load_workloads(tmp_path)
    held_out, short = pools["held-out"], pools["short"]
    assert list(pools) == ["held-out", "short"]
    assert len(short.texts) == len(held_out.texts) // 2 and set(short.texts) <= set(held_out.texts)
    lengths = {t: len(t.split()) for t in held_out.texts}
    assert sum(lengths[t] for t in short.texts) < sum(lengths.values()) / 2
    with pytest.raises(ValueError, match="unknown workload"):
        load_workloads(tmp_path, ("long",))
