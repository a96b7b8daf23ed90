"""Metrics and the quick-mode head fit."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from training.train import evaluate, fit_head


def test_metrics_match_a_hand_computed_case() -> None:
    truth = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    m = evaluate(predicted, truth, 3)
    assert m.accuracy == 4 / 6
    # F1: class 0: tp1 fp1 fn1 -> .5; class 1: tp2 fp1 fn0 -> .8; class 2: tp1 fp0 fn1 -> 2/3
    assert np.allclose(m.f1_per_label, [0.5, 0.8, 2 / 3])
    assert np.isclose(m.macro_f1, (0.5 + 0.8 + 2 / 3) / 3)


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
