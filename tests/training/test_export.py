"""Export refuses a trace that disagrees with the eager model, and writes atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from predictor.modelcard import ServingCard
from training.encoder import packaged_encoder_dir
from training.export import ParityError, export


class ShapeDependent(nn.Module):
    """Takes a Python branch on the batch size: tracing freezes the branch it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(30522, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.emb(input_ids).mean(1)
        if input_ids.shape[0] > 2:  # the trace example has 2 texts, the parity batch more
            return pooled * 2
        return pooled


class MeanEmbedding(ShapeDependent):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.emb(input_ids).mean(1)


def card(version: str = "") -> ServingCard:
    return ServingCard(name="t", version=version, labels=["a", "b", "c"], max_seq_length=32)


def tokenizer_json() -> str:
    return (packaged_encoder_dir() / "tokenizer.json").read_text()


def test_a_frozen_branch_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    out = tmp_path / "m"
    with pytest.raises(ParityError, match="differs from eager"):
        export(ShapeDependent(), card(), tokenizer_json(), out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the staging directory is gone too


def test_a_refused_export_leaves_the_previous_model_in_place(tmp_path: Path) -> None:
    out = tmp_path / "m"
    export(MeanEmbedding(), card("v1"), tokenizer_json(), out)
    with pytest.raises(ParityError):
        export(ShapeDependent(), card("v2"), tokenizer_json(), out)
    assert json.loads((out / "model_card.json").read_text())["version"] == "v1"


def test_export_writes_a_card_the_predictor_accepts(tmp_path: Path) -> None:
    report = export(MeanEmbedding(), card(), tokenizer_json(), tmp_path / "m")
    written = ServingCard.read(tmp_path / "m")
    digest = written.model_extra["model_sha256"]  # type: ignore[index]
    assert written.version.endswith(digest[:8])  # content-addressed default version
    assert report.max_abs_diff <= 1e-4
    assert written.model_extra["parity_max_abs_diff"] == report.max_abs_diff  # type: ignore[index]
    assert {p.name for p in (tmp_path / "m").iterdir()} == {
        "model.pt", "tokenizer.json", "model_card.json"
    }  # fmt: skip
