"""The ways to fit the classifier: the top layers on cached lower ones, a head alone, or all.

Quick mode runs the frozen lower layers over every text once (the expensive
part, with a progress bar), keeps their output in bf16, and fine-tunes only
the top layers and the head on that cache: a forward and backward pass through
three of six layers per step, under bf16 autocast where the CPU has it, is
what fits the 15-minute budget of a 2-core machine. With no layers to train
(or an encoder that cannot be split) it fits a logistic head on frozen
embeddings. Full mode updates every weight; it wants
a GPU or a long run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn
from tqdm import tqdm

from predictor.tokenization import encode
from training.encoder import PooledClassifier


@dataclass(frozen=True)
class Metrics:
    accuracy: float
    macro_f1: float
    f1_per_label: list[float]
    n_eval: int
    confusion: list[list[int]]  # rows: true label, columns: predicted label


def evaluate(predicted: np.ndarray, truth: np.ndarray, num_labels: int) -> Metrics:
    """Accuracy and macro-F1: macro because the positive class is the smallest."""
    f1s = []
    confusion = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    for cls in range(num_labels):
        tp = float(np.sum((predicted == cls) & (truth == cls)))
        fp = float(np.sum((predicted == cls) & (truth != cls)))
        fn = float(np.sum((predicted != cls) & (truth == cls)))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return Metrics(
        float(np.mean(predicted == truth)), float(np.mean(f1s)), f1s, len(truth), confusion.tolist()
    )


def length_batches(
    tokenizer: Tokenizer, texts: list[str], batch_size: int
) -> Iterator[tuple[np.ndarray, list[str]]]:
    """Batches of similar length, so padding wastes little compute; yields original indices."""
    # the serving tokenizer pads a batch to its longest text: count real tokens, not ids
    lengths = np.array([sum(e.attention_mask) for e in tokenizer.encode_batch(texts)])
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield index, [texts[i] for i in index]


Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.inference_mode()
def run_all(
    forward: Forward, tokenizer: Tokenizer, texts: list[str], batch_size: int, desc: str
) -> np.ndarray:
    """`forward(ids, mask)` for every text in length-sorted batches, rows in input order."""
    out: np.ndarray | None = None
    steps = math.ceil(len(texts) / batch_size)
    batches = length_batches(tokenizer, texts, batch_size)
    for index, chunk in tqdm(batches, total=steps, desc=desc, unit="batch"):
        batch = encode(tokenizer, chunk)
        rows = forward(batch.input_ids, batch.attention_mask).float().numpy()
        if out is None:
            out = np.zeros((len(texts), rows.shape[1]), dtype=np.float32)
        out[index] = rows
    assert out is not None, "no texts"
    return out


def predict_logits(
    module: nn.Module, tokenizer: Tokenizer, texts: list[str], batch_size: int, desc: str
) -> np.ndarray:
    """Logits for every text, in input order."""
    return run_all(module, tokenizer, texts, batch_size, desc)


def embed_all(
    model: PooledClassifier, tokenizer: Tokenizer, texts: list[str], batch_size: int
) -> np.ndarray:
    """Pooled embeddings for every text, in input order."""
    return run_all(model.embed, tokenizer, texts, batch_size, "embed")


def fit_head(
    head: nn.Linear,
    features: np.ndarray,
    labels: np.ndarray,
    epochs: int,
    weight_decay: float,
    seed: int,
) -> None:
    """Multinomial logistic regression on standardised features, folded back into `head`.

    Standardising makes one learning rate fit every encoder; folding the mean
    and scale into the weights keeps the exported graph a single Linear.
    """
    torch.manual_seed(seed)
    x = torch.from_numpy(features)
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    z = (x - mean) / std
    y = torch.from_numpy(labels)
    class_weight = balanced_weights(labels, head.out_features)  # lifts macro-F1
    linear = nn.Linear(z.shape[1], head.out_features)
    optimiser = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=20, history_size=20)
    loss_fn = nn.CrossEntropyLoss(weight=class_weight)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = loss_fn(linear(z), y) + weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    for _ in tqdm(range(epochs), desc="fit head", unit="step"):
        optimiser.step(closure)
    with torch.no_grad():
        weight = linear.weight / std
        head.weight.copy_(weight)
        head.bias.copy_(linear.bias - weight @ mean)


def balanced_weights(labels: np.ndarray, num_labels: int) -> torch.Tensor:
    """Inverse-frequency class weights (mean 1): positive, the smallest class, is not
    swallowed by neutral, which a plain loss would favour."""
    counts = np.bincount(labels, minlength=num_labels).astype(np.float32).clip(min=1)
    return torch.from_numpy(counts.sum() / (num_labels * counts))


CLASS_WEIGHTINGS = ("balanced", "sqrt", "none")


def class_weights(labels: np.ndarray, num_labels: int, how: str) -> torch.Tensor | None:
    """Loss weights per class: inverse frequency ("balanced"), its square root ("sqrt": lifts
    the minority positive class without giving up as much accuracy on the majority), or
    none."""
    if how not in CLASS_WEIGHTINGS:
        raise ValueError(f"class weighting {how!r} is not one of {CLASS_WEIGHTINGS}")
    if how == "none":
        return None
    weight = balanced_weights(labels, num_labels)
    return weight.sqrt() if how == "sqrt" else weight


def linear_schedule(
    optimiser: torch.optim.Optimizer, steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """10% linear warm-up, then linear decay to 0: the usual fine-tuning schedule."""
    warmup = max(1, steps // 10)
    return torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup + 1)))
    )


def bf16_autocast(enabled: bool) -> AbstractContextManager[Any]:
    """CPU autocast to bf16 (native on AVX512-BF16/AMX: about twice fp32's speed) or nothing;
    training, its cache and the bf16 export all run under this one context."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else nullcontext()


@torch.inference_mode()
def cache_lower(
    model: PooledClassifier,
    tokenizer: Tokenizer,
    texts: list[str],
    upto: int,
    batch_size: int,
    bf16: bool = False,
) -> list[torch.Tensor]:
    """Each text's hidden states after the frozen first `upto` layers: [tokens, hidden] bf16,
    padding dropped. Computed once, they feed every epoch of the top layers (bf16 halves the
    ~1 GB a 37k-tweet corpus takes); `bf16` also computes them under bf16 autocast."""
    cached: list[torch.Tensor] = [torch.empty(0)] * len(texts)
    steps = math.ceil(len(texts) / batch_size)
    batches = length_batches(tokenizer, texts, batch_size)
    for index, chunk in tqdm(batches, total=steps, desc=f"cache layers 1-{upto}", unit="batch"):
        batch = encode(tokenizer, chunk)
        with bf16_autocast(bf16):
            hidden = model.lower(batch.input_ids, batch.attention_mask, upto)
        hidden = hidden.to(torch.bfloat16)
        for row, i in enumerate(index):
            cached[i] = hidden[row, : int(batch.attention_mask[row].sum())].clone()
    return cached


def _pad(cached: list[torch.Tensor], index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Cached rows -> fp32 [B, longest, hidden] and their 0/1 mask."""
    rows = [cached[i] for i in index]
    longest = max(len(r) for r in rows)
    hidden = torch.zeros(len(rows), longest, rows[0].shape[1])
    mask = torch.zeros(len(rows), longest, dtype=torch.int64)
    for j, r in enumerate(rows):
        hidden[j, : len(r)] = r.float()
        mask[j, : len(r)] = 1
    return hidden, mask


def _cached_batches(cached: list[torch.Tensor], batch_size: int) -> list[np.ndarray]:
    """Index batches of similar length over the cache (inference: order does not matter)."""
    order = np.argsort([len(c) for c in cached], kind="stable")
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


BUCKET_BATCHES = 32  # batches per length-sorted bucket in training


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, bucket: int = BUCKET_BATCHES
) -> list[np.ndarray]:
    """One epoch of training batches: shuffle, sort only within buckets of `bucket` batches,
    shuffle the batches.

    Sorting the whole set by length made each batch a slice of one length band, and in an
    aggregated corpus length tracks source and label (the per-batch loss swung from 0.03
    to 2.0): the top layers learnt from label-skewed batches and the build stalled at
    the frozen model's 0.73. Random batches fix that but pad to the longest of 32 random
    tweets; sorting within buckets keeps most of the padding saving and the randomness.
    """
    order = rng.permutation(len(lengths))
    batches: list[np.ndarray] = []
    for s in range(0, len(order), batch_size * bucket):
        chunk = order[s : s + batch_size * bucket]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def train_top(
    model: PooledClassifier,
    cached: list[torch.Tensor],
    labels: np.ndarray,
    start: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    class_weighting: str = "sqrt",
    bf16: bool = False,
) -> None:
    """Fine-tune layers `start`.. and the head on cached lower-layer states; nothing below
    `start` gets a gradient. Batches are random, length-sorted only within buckets
    (`bucketed_batches`); the fresh head learns 10x faster than the pretrained layers."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    layers = model.layers
    assert layers is not None, "encoder cannot be split"
    model.requires_grad_(False)
    top = [p for layer in layers[start:] for p in layer.parameters()]
    for p in [*top, *model.head.parameters()]:
        p.requires_grad_(True)
    groups = [{"params": top, "lr": lr}, {"params": list(model.head.parameters()), "lr": lr * 10}]
    optimiser = torch.optim.AdamW(groups, weight_decay=0.01)
    weight = class_weights(labels, model.head.out_features, class_weighting)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    lengths = np.array([len(c) for c in cached])
    per_epoch = math.ceil(len(cached) / batch_size)
    schedule = linear_schedule(optimiser, epochs * per_epoch)
    model.train()
    with tqdm(
        total=epochs * per_epoch, desc=f"train layers {start + 1}+ and head", unit="step"
    ) as bar:
        for epoch in range(epochs):
            for index in bucketed_batches(lengths, batch_size, rng):
                hidden, mask = _pad(cached, index)
                with bf16_autocast(bf16):  # weights and their updates stay fp32
                    logits = model.upper(hidden, mask, start)
                loss = loss_fn(logits.float(), torch.from_numpy(labels[index]))
                optimiser.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_([*top, *model.head.parameters()], 1.0)
                optimiser.step()
                schedule.step()
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
                bar.update()
    model.eval().requires_grad_(True)


@torch.inference_mode()
def upper_logits(
    model: PooledClassifier, cached: list[torch.Tensor], start: int, batch_size: int, desc: str
) -> np.ndarray:
    """Logits of cached texts through the (trained) top, rows in cache order."""
    out = np.zeros((len(cached), model.head.out_features), dtype=np.float32)
    for index in tqdm(_cached_batches(cached, batch_size), desc=desc, unit="batch"):
        hidden, mask = _pad(cached, index)
        out[index] = model.upper(hidden, mask, start).float().numpy()
    return out


def fine_tune(
    module: nn.Module,
    tokenizer: Tokenizer,
    texts: list[str],
    labels: np.ndarray,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str,
    class_weighting: str = "sqrt",
) -> None:
    """AdamW over every weight with linear warm-up and decay; class-weighted loss."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    module.to(device).train()
    num_labels = int(labels.max()) + 1
    weight = class_weights(labels, num_labels, class_weighting)
    loss_fn = nn.CrossEntropyLoss(weight=None if weight is None else weight.to(device))
    optimiser = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * math.ceil(len(texts) / batch_size)
    schedule = linear_schedule(optimiser, steps)
    with tqdm(total=steps, desc="fine-tune", unit="step") as bar:
        for epoch in range(epochs):
            order = rng.permutation(len(texts))
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                batch = encode(tokenizer, [texts[i] for i in index])
                logits = module(batch.input_ids.to(device), batch.attention_mask.to(device))
                loss = loss_fn(logits, torch.from_numpy(labels[index]).to(device))
                optimiser.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(module.parameters(), 1.0)
                optimiser.step()
                schedule.step()
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
                bar.update()
    module.to("cpu").eval()
