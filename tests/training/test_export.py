"""Export refuses a trace that disagrees with the eager model, writes atomically, and
writes the bf16 file only when it agrees with fp32."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from predictor.modelcard import ServingCard
from training.encoder import packaged_encoder_dir
from training.export import BF16_MIN_AGREEMENT, ParityError, content_sha256, export


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


class EmbedLinear(MeanEmbedding):
    """A Linear layer after the embedding: what autocast runs in bf16."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(input_ids).mean(1))


class NearTie(ShapeDependent):
    """Three logits 0.1 % apart: fp32 tells them apart, bf16 (8 mantissa bits) rounds the
    weights to the same value and always answers the first label."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(30522, 1)
        self.head = nn.Linear(1, 3, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0], [1.001], [0.999]]))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(input_ids).mean(1))


HELDOUT = [f"held-out text number {i}, some words {'x' * (i % 7)}" for i in range(40)]


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
    digest = written.model_extra["model_content_sha256"]  # type: ignore[index]
    assert written.version.endswith(digest[:8])  # content-addressed default version
    file_hash = hashlib.sha256((tmp_path / "m" / "model.pt").read_bytes()).hexdigest()
    assert written.model_extra["model_sha256"] == file_hash  # type: ignore[index]
    assert report.max_abs_diff <= 1e-4
    assert written.model_extra["parity_max_abs_diff"] == report.max_abs_diff  # type: ignore[index]
    assert {p.name for p in (tmp_path / "m").iterdir()} == {
        "model.pt", "model-bf16.pt", "tokenizer.json", "model_card.json"
    }  # fmt: skip


def test_bf16_is_traced_under_autocast_and_agrees_with_fp32(tmp_path: Path) -> None:
    torch.manual_seed(0)
    report = export(EmbedLinear(), card(), tokenizer_json(), tmp_path / "m", heldout=HELDOUT)
    assert report.bf16 is not None and report.bf16.written
    entry = ServingCard.read(tmp_path / "m").model_extra["precisions"]["bf16"]  # type: ignore[index]
    assert entry["file"] == "model-bf16.pt" and entry["n_texts"] == len(HELDOUT)
    assert entry["agreement"] == report.bf16.agreement >= BF16_MIN_AGREEMENT
    assert entry["max_prob_diff"] == report.bf16.max_prob_diff
    # the file really computes in bf16 (the trace kept autocast's casts), and stays close
    fp32 = torch.jit.load(str(tmp_path / "m" / "model.pt"))
    bf16 = torch.jit.load(str(tmp_path / "m" / "model-bf16.pt"))
    ids = torch.randint(1000, 2000, (4, 9))
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        low, full = bf16(ids, mask), fp32(ids, mask)
    assert low.dtype == torch.bfloat16 and full.dtype == torch.float32
    assert 0 < float((low.float() - full).abs().max()) < 0.05


def test_bf16_below_the_agreement_floor_is_not_written(tmp_path: Path) -> None:
    torch.manual_seed(0)
    report = export(NearTie(), card(), tokenizer_json(), tmp_path / "m", heldout=HELDOUT)
    assert report.bf16 is not None and not report.bf16.written
    assert report.bf16.agreement < BF16_MIN_AGREEMENT
    out = tmp_path / "m"
    assert (out / "model.pt").is_file() and not (out / "model-bf16.pt").exists()
    entry = ServingCard.read(out).model_extra["precisions"]["bf16"]  # type: ignore[index]
    assert entry["file"] is None and "agreement" in entry["refused"]
    assert entry["agreement"] == report.bf16.agreement


def test_the_version_digest_is_the_content_not_the_file(tmp_path: Path) -> None:
    """Two saves of one module differ as files (torch's per-save serialization id) but not
    in content; a changed weight or tokenizer changes the digest."""
    export(MeanEmbedding(), card(), tokenizer_json(), tmp_path / "m")
    model = torch.jit.load(str(tmp_path / "m" / "model.pt"))
    model.save(str(tmp_path / "again.pt"))
    again = torch.jit.load(str(tmp_path / "again.pt"))
    file_hashes = {hashlib.sha256(p.read_bytes()).hexdigest()
                   for p in (tmp_path / "m" / "model.pt", tmp_path / "again.pt")}  # fmt: skip
    assert len(file_hashes) == 2
    tok = tokenizer_json()
    assert content_sha256(again, tok) == content_sha256(model, tok)
    written = ServingCard.read(tmp_path / "m").model_extra or {}
    assert written["model_content_sha256"] == content_sha256(model, tok)
    assert content_sha256(model, tok + " ") != content_sha256(model, tok)
    with torch.no_grad():
        next(iter(again.parameters())).add_(1e-3)
    assert content_sha256(again, tok) != content_sha256(model, tok)
