"""Temperature scaling: make `score` mean "right this often".

A fine-tuned classifier is usually over-confident: of the texts it answers
with 0.95, fewer than 95% are right. One temperature T, fitted on a held-out
calibration split by minimising the negative log-likelihood of logits / T,
fixes that without changing any argmax (so accuracy is untouched). T is folded
into the model before export, so every exported precision serves calibrated
scores and the predictor needs no extra step. The expected calibration error
(ECE) is measured on a split T never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.encoder import PooledClassifier

ECE_BINS = 15


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(z / z.sum(axis=1, keepdims=True))


@dataclass(frozen=True)
class Reliability:
    """Per confidence bin: mean top-class probability, accuracy and count (empty bins: 0)."""

    edges: list[float]
    confidence: list[float]
    accuracy: list[float]
    count: list[int]

    @property
    def ece(self) -> float:
        """Count-weighted mean |accuracy - confidence| over the bins."""
        n = sum(self.count)
        gaps = [
            c * abs(a - f)
            for c, a, f in zip(self.count, self.accuracy, self.confidence, strict=True)
        ]
        return float(sum(gaps) / n) if n else 0.0


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> Reliability:
    """Bin texts by top-class probability into `bins` equal-width bins over [0, 1]."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    conf, acc, count = [], [], []
    for b in range(bins):
        members = which == b
        n = int(members.sum())
        count.append(n)
        conf.append(float(confidence[members].mean()) if n else 0.0)
        acc.append(float(correct[members].mean()) if n else 0.0)
    return Reliability(edges.tolist(), conf, acc, count)


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of top-class probabilities."""
    return reliability(probs, labels, bins).ece


def nll(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels."""
    probs = softmax(logits)
    return float(-np.log(probs[np.arange(len(labels)), labels].clip(min=1e-12)).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 that minimises NLL of logits / T (LBFGS on log T, so T stays positive)."""
    x = torch.from_numpy(logits.astype(np.float32))
    y = torch.from_numpy(labels.astype(np.int64))
    log_t = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")
    loss_fn = nn.CrossEntropyLoss()

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = loss_fn(x / log_t.exp(), y)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp())


class TemperatureScaled(nn.Module):
    """Logits / T, for models whose last layer is not ours to rescale."""

    temperature: torch.Tensor

    def __init__(self, module: nn.Module, temperature: float) -> None:
        super().__init__()
        self.module = module
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.module(input_ids, attention_mask)
        return out / self.temperature.to(out.dtype)


def fold_temperature(module: nn.Module, temperature: float) -> nn.Module:
    """The module with logits divided by T. A pooled head's weights and bias are divided in
    place (the exported graph is unchanged); any other module is wrapped."""
    if isinstance(module, PooledClassifier):
        with torch.no_grad():
            module.head.weight.div_(temperature)
            module.head.bias.div_(temperature)
        return module
    return TemperatureScaled(module, temperature).eval()


def reliability_png(before: Reliability, after: Reliability, path: Path, title: str) -> None:
    """Reliability diagram: accuracy per confidence bin before and after scaling, against
    the diagonal a calibrated model follows; bar widths are the bins, the lower panel the
    counts. matplotlib is a build dependency only, hence imported here."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.array(before.edges)
    centres = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(6, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", label="calibrated")
    for rel, colour, name in ((before, "tab:red", "before"), (after, "tab:blue", "after")):
        shown = np.array(rel.count) > 0
        top.plot(np.array(rel.confidence)[shown], np.array(rel.accuracy)[shown], "o-",
                 color=colour, label=f"{name} (ECE {rel.ece:.3f})")  # fmt: skip
        bottom.bar(centres + (-width / 4 if name == "before" else width / 4), rel.count,
                   width=width / 2, color=colour, label=name)  # fmt: skip
    top.set_ylabel("accuracy")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_title(title)
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    bottom.set_xlabel("top-class probability (score)")
    bottom.set_ylabel("texts")
    bottom.set_yscale("log")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
