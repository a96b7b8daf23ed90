"""Metrics, the frozen head fit, and partial fine-tuning on cached lower layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from training.encoder import LoadedEncoder, PooledClassifier, load_encoder
from training.tiny import build_tiny_encoder
from training.train import (
    bucketed_batches,
    cache_lower,
    class_weights,
    evaluate,
    fit_head,
    length_batches,
    train_top,
    upper_logits,
)

TEXTS = [
    "I love this", "worst day ever, never again", "the bus is at ten", "ok",
    "what a great game tonight, so happy", "meh", "I hate waiting in line for hours",
    "new phone arrived", "this is fine", "absolutely wonderful service",
]  # fmt: skip
LABELS = np.array([2, 0, 1, 1, 2, 1, 0, 1, 1, 2])


@pytest.fixture(scope="module")
def three_layers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 3-layer BERT directory: enough layers to freeze some and train others."""
    from transformers import BertConfig, BertModel

    path = build_tiny_encoder(tmp_path_factory.mktemp("enc3"), "bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=3,
                        num_attention_heads=2, intermediate_size=64)  # fmt: skip
    BertModel(config).save_pretrained(path)
    return path


def encoder(path: Path, pool_layers: int = 2) -> LoadedEncoder:
    return load_encoder(path, 3, max_seq_length=32, pool_layers=pool_layers)


def test_metrics_match_a_hand_computed_case() -> None:
    truth = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    m = evaluate(predicted, truth, 3)
    assert m.accuracy == 4 / 6
    # F1: class 0: tp1 fp1 fn1 -> .5; class 1: tp2 fp1 fn0 -> .8; class 2: tp1 fp0 fn1 -> 2/3
    assert np.allclose(m.f1_per_label, [0.5, 0.8, 2 / 3])
    assert np.isclose(m.macro_f1, (0.5 + 0.8 + 2 / 3) / 3)
    assert m.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]  # rows true, columns predicted


def test_head_learns_separable_classes_with_scaling_folded_in() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[50.0, 0.0, 1000.0], [0.0, 50.0, 1000.0], [-50.0, -50.0, 1000.0]])
    labels = rng.integers(0, 3, size=600)
    features = (centres[labels] + rng.normal(0, 5, size=(600, 3))).astype(np.float32)
    head = nn.Linear(3, 3)
    fit_head(head, features, labels, epochs=10, weight_decay=1e-4, seed=0)
    with torch.no_grad():
        predicted = head(torch.from_numpy(features)).argmax(1).numpy()
    # raw, unscaled features go straight into the exported Linear
    assert (predicted == labels).mean() > 0.99


def test_length_batches_group_by_real_tokens_not_padded_ids(three_layers: Path) -> None:
    tok = encoder(three_layers).tokenizer()
    texts = ["a b c d e f g h", "a", "a b c", "a b", "a b c d e f", "a b c d"]
    seen = [i for index, _ in length_batches(tok, texts, 2) for i in index]
    assert seen == [1, 3, 2, 5, 4, 0]  # shortest first, although the tokenizer pads


def test_split_forward_is_the_forward_for_every_split(three_layers: Path) -> None:
    enc = encoder(three_layers)
    model = enc.module
    assert isinstance(model, PooledClassifier)
    batch = enc.tokenizer().encode_batch(TEXTS[:4])
    ids = torch.tensor([e.ids for e in batch])
    mask = torch.tensor([e.attention_mask for e in batch])
    with torch.inference_mode():
        whole = model(ids, mask)
        for k in range(2):  # pool_layers=2 needs the states entering layer k and after
            assert torch.allclose(model.upper(model.lower(ids, mask, k), mask, k), whole)
        # what the predictor serves: the encoder's own forward gives the same last state
        own = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.allclose(own * mask[..., None], model.lower(ids, mask, 3) * mask[..., None],
                              atol=1e-5)  # fmt: skip
    assert model.head.in_features == 2 * 32  # two pooled states, concatenated


def test_partial_fine_tuning_moves_the_top_and_nothing_below(three_layers: Path) -> None:
    enc = encoder(three_layers)
    model = enc.module
    assert isinstance(model, PooledClassifier)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cached = cache_lower(model, enc.tokenizer(), TEXTS, upto=2, batch_size=4)
    assert [c.dtype for c in cached] == [torch.bfloat16] * len(TEXTS)
    lengths = [sum(e.attention_mask) for e in enc.tokenizer().encode_batch(TEXTS)]
    assert [len(c) for c in cached] == lengths  # padding dropped
    train_top(model, cached, LABELS, start=2, epochs=3, batch_size=4, lr=1e-3, seed=0)
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    trainable = {k for k in before if k.startswith(("encoder.encoder.layer.2.", "head."))}
    weights = {k for k in trainable if k.endswith(("weight", "bias"))}
    assert weights <= moved  # every weight of layer 3 and the head took steps
    assert moved <= trainable  # embeddings and layers 1-2 are bit-for-bit what they were
    assert all(p.requires_grad for p in model.parameters())  # handed back as it came
    logits = upper_logits(model, cached, 2, 4, "evaluate")
    batch = enc.tokenizer().encode_batch(TEXTS)
    ids = torch.tensor([e.ids for e in batch])
    mask = torch.tensor([e.attention_mask for e in batch])
    with torch.inference_mode():
        direct = model(ids, mask).numpy()
    assert np.allclose(logits, direct, atol=0.05)  # the bf16 cache is close to fp32
    assert (logits.argmax(1) == direct.argmax(1)).all()


def test_partial_fine_tuning_is_deterministic_given_the_seed(three_layers: Path) -> None:
    states = []
    for _ in range(2):
        torch.manual_seed(7)  # the fresh head's init, as training.build seeds before loading
        enc = encoder(three_layers)
        model = enc.module
        assert isinstance(model, PooledClassifier)
        cached = cache_lower(model, enc.tokenizer(), TEXTS, upto=1, batch_size=4)
        train_top(model, cached, LABELS, start=1, epochs=2, batch_size=3, lr=1e-3, seed=7)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_bucketed_batches_cover_every_row_once_and_are_not_one_length_band() -> None:
    """Each epoch visits every row once; batches are short-padded (sorted within a bucket)
    but not the global length order that let one length band - one label - fill a batch."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=1000)
    batches = bucketed_batches(lengths, batch_size=10, rng=np.random.default_rng(1), bucket=8)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1000))
    spread = [int(lengths[b].max() - lengths[b].min()) for b in batches]
    assert np.mean(spread) < 10  # within a bucket of 80 rows, neighbours in length
    firsts = [int(lengths[b].min()) for b in batches]
    assert firsts != sorted(firsts)  # batch order is shuffled, not shortest first
    again = bucketed_batches(lengths, batch_size=10, rng=np.random.default_rng(1), bucket=8)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


def test_class_weights_balanced_sqrt_and_none() -> None:
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    balanced = class_weights(labels, 3, "balanced")
    sqrt = class_weights(labels, 3, "sqrt")
    assert balanced is not None and sqrt is not None
    assert torch.allclose(balanced, torch.tensor([100 / 180, 100 / 90, 100 / 30]))
    assert torch.allclose(sqrt, balanced.sqrt())
    assert sqrt[2] > sqrt[1] > sqrt[0]  # the rare class still counts more
    assert class_weights(labels, 3, "none") is None
    with pytest.raises(ValueError, match="one of"):
        class_weights(labels, 3, "inverse")
