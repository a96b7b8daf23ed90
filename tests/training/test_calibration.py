"""Temperature scaling: ECE, the fit, and folding T into the exported model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.calibration import (
    TemperatureScaled,
    ece,
    fit_temperature,
    fold_temperature,
    nll,
    reliability,
    reliability_png,
    softmax,
)
from training.encoder import PooledClassifier


def over_confident(n: int, sharpen: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z), logits reported as sharpen * z: a model that is right as
    often as softmax(z) says but claims more (the usual state after fine-tuning)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, size=(n, 3))
    p = softmax(z)
    labels = np.array([rng.choice(3, p=row) for row in p])
    return (sharpen * z).astype(np.float32), labels


def test_ece_of_a_hand_computed_case() -> None:
    probs = np.array([[0.9, 0.1, 0.0], [0.9, 0.0, 0.1], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4]])
    labels = np.array([0, 1, 1, 2])
    # bins of 0.1: {0.9, 0.9} conf .9 acc .5; {0.6} conf .6 acc 1; {0.4} conf .4 acc 1
    expected = (2 * 0.4 + 1 * 0.4 + 1 * 0.6) / 4
    assert np.isclose(ece(probs, labels, bins=10), expected)
    rel = reliability(probs, labels, bins=10)
    assert sum(rel.count) == 4 and rel.count[8] == 2  # 0.9 falls in (0.8, 0.9]


def test_temperature_scaling_lowers_ece_of_an_over_confident_model() -> None:
    logits, labels = over_confident(4000, sharpen=3.0, seed=0)
    held_logits, held_labels = over_confident(4000, sharpen=3.0, seed=1)
    t = fit_temperature(logits, labels)
    assert 2.5 < t < 3.5  # recovers the sharpening it has to undo
    before = ece(softmax(held_logits), held_labels)
    after = ece(softmax(held_logits / t), held_labels)
    assert before > 0.1 and after < before / 3  # measured on data T never saw
    assert nll(held_logits / t, held_labels) < nll(held_logits, held_labels)
    assert (softmax(held_logits / t).argmax(1) == held_logits.argmax(1)).all()  # same answers


def test_a_calibrated_model_keeps_its_temperature_near_one() -> None:
    logits, labels = over_confident(4000, sharpen=1.0, seed=2)
    assert 0.85 < fit_temperature(logits, labels) < 1.15


class _Fixed(nn.Module):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [input_ids.float().sum(1), attention_mask.float().sum(1), -input_ids.float().sum(1)], 1
        )


def test_folding_divides_the_logits_a_pooled_head_in_place_anything_else_wrapped() -> None:
    ids = torch.tensor([[3, 4, 5], [6, 7, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])

    class _Enc(nn.Module):
        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> object:
            class _Out:
                last_hidden_state = input_ids.float().unsqueeze(-1).repeat(1, 1, 4)

            return _Out()

    torch.manual_seed(0)
    pooled = PooledClassifier(_Enc(), 4, 3)
    with torch.no_grad():
        raw = pooled(ids, mask)
    folded = fold_temperature(pooled, 2.5)
    assert folded is pooled  # no wrapper: the traced graph is the same as before
    with torch.no_grad():
        assert torch.allclose(folded(ids, mask), raw / 2.5, atol=1e-6)

    other = fold_temperature(_Fixed(), 2.0)
    assert isinstance(other, TemperatureScaled)
    traced = torch.jit.trace(other, (ids, mask))  # exports like any module
    assert torch.allclose(traced(ids, mask), _Fixed()(ids, mask) / 2.0)


def test_reliability_png_is_written(tmp_path: Path) -> None:
    logits, labels = over_confident(500, sharpen=3.0, seed=3)
    before = reliability(softmax(logits), labels)
    after = reliability(softmax(logits / 3.0), labels)
    out = tmp_path / "reliability.png"
    reliability_png(before, after, out, "test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
