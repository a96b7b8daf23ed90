"""The two ways to fit the classifier: a quick head on a frozen encoder, or a full fine-tune.

Quick mode embeds every text once (the expensive part, with a progress bar)
and then fits a linear head on the cached embeddings in seconds, so it fits
the 10-minute budget of a 2-core machine. Full mode updates the encoder too;
it wants a GPU or a long run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

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


def evaluate(predicted: np.ndarray, truth: np.ndarray, num_labels: int) -> Metrics:
    """Accuracy and macro-F1: macro because the positive class is the smallest."""
    f1s = []
    for cls in range(num_labels):
        tp = float(np.sum((predicted == cls) & (truth == cls)))
        fp = float(np.sum((predicted == cls) & (truth != cls)))
        fn = float(np.sum((predicted != cls) & (truth == cls)))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return Metrics(float(np.mean(predicted == truth)), float(np.mean(f1s)), f1s, len(truth))


def length_batches(
    tokenizer: Tokenizer, texts: list[str], batch_size: int
) -> Iterator[tuple[np.ndarray, list[str]]]:
    """Batches of similar length, so padding wastes little compute; yields original indices."""
    lengths = np.array([len(e.ids) for e in tokenizer.encode_batch(texts)])
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
    counts = torch.bincount(y, minlength=head.out_features).float().clamp(min=1)
    class_weight = counts.sum() / (len(counts) * counts)  # balanced: lifts macro-F1
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
) -> None:
    """AdamW over every weight with linear warm-up and decay; class-balanced loss."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    module.to(device).train()
    counts = np.bincount(labels).astype(np.float32).clip(min=1)
    weight = torch.from_numpy(counts.sum() / (len(counts) * counts)).to(device)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    optimiser = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * math.ceil(len(texts) / batch_size)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup + 1)))
    )
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
