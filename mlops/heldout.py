"""Texts neither model trained on, and what each model directory answers for them.

Two cards' own held-out scores come from different splits (another seed or
limit), so they are not comparable. Both cards record their split parameters
and the corpus hash, which is enough to rebuild each training set and keep only
texts outside both: a fair, shared exam. Answers come from the served artefact
(model.pt through the predictor's Engine), not from the training code's copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from predictor.engine import Engine
from predictor.modelcard import ServingCard
from predictor.settings import ServingSettings
from training import data


class HeldOutError(RuntimeError):
    """The two cards cannot share an evaluation set (other corpus, no split, no texts left)."""


@dataclass(frozen=True)
class EvalSet:
    texts: list[str]
    labels: np.ndarray  # int64 indices into data.LABELS


def _train_indices(card: ServingCard, labels: np.ndarray) -> np.ndarray:
    split = (card.model_extra or {}).get("split")
    if not isinstance(split, dict):
        raise HeldOutError(f"card {card.version} records no split; cannot tell what it trained on")
    train, _ = data.stratified_split(
        labels, float(split["test_fraction"]), int(split["seed"]), split.get("limit")
    )
    return train


def shared_heldout(
    cards: list[ServingCard], size: int, seed: int = 0, corpus: data.Corpus | None = None
) -> EvalSet:
    """Up to `size` labelled texts that none of `cards` trained on (fixed sample per seed)."""
    corpus = corpus or data.load_corpus()
    for card in cards:
        sha = (card.model_extra or {}).get("training_data_sha256")
        if sha != corpus.sha256:
            raise HeldOutError(
                f"card {card.version} was trained on corpus {str(sha)[:12]}, the installed "
                f"one is {corpus.sha256[:12]}: its training texts cannot be rebuilt"
            )
    seen = np.zeros(len(corpus), dtype=bool)
    for card in cards:
        seen[_train_indices(card, corpus.labels)] = True
    pool = np.flatnonzero(~seen)
    if len(pool) == 0:
        raise HeldOutError("every text was in some model's training set")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.permutation(pool)[: min(size, len(pool))])
    return EvalSet([corpus.texts[i] for i in pick], corpus.labels[pick])


def predict(model_dir: Path, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Probabilities [N, labels] from the model directory, exactly as the predictor runs it."""
    engine = Engine(ServingSettings(model_dir=model_dir, device="cpu", cpu_threads=1))
    engine.load()
    try:
        out = []
        steps = math.ceil(len(texts) / batch_size)
        for start in tqdm(range(0, len(texts), batch_size), total=steps, desc=model_dir.name):
            out.append(engine.infer(texts[start : start + batch_size]).probabilities)
        return np.concatenate(out)
    finally:
        engine.shutdown()
