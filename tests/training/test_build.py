"""The whole build on tiny encoders, served by a real predictor process."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import torch

from predictor.modelcard import ServingCard
from predictor.tokenization import load_tokenizer
from tests.fixtures.predictor_proc import PredictorProcess
from training import build as build_cli
from training.data import LABELS
from training.tiny import build_tiny_model_dir


def test_card_records_data_metrics_and_parity(tiny_model_dir: Path) -> None:
    card = ServingCard.read(tiny_model_dir)
    extra = card.model_extra or {}
    assert card.labels == list(LABELS)
    assert len(extra["training_data_sha256"]) == 64
    assert 0 <= extra["metrics"]["accuracy"] <= 1 and 0 <= extra["metrics"]["macro_f1"] <= 1
    assert extra["split"]["n_train"] + extra["split"]["n_test"] == 400
    assert extra["parity_max_abs_diff"] <= 1e-4
    assert extra["created_at"].startswith("20")


def test_existing_directory_is_kept_without_force(tiny_model_dir: Path) -> None:
    before = (tiny_model_dir / "model.pt").stat().st_mtime_ns
    args = build_cli.parse_args(["--out", str(tiny_model_dir)])
    assert build_cli.build(args) is None
    assert (tiny_model_dir / "model.pt").stat().st_mtime_ns == before


def test_exported_graph_handles_other_batch_sizes_and_lengths(tiny_model_dir: Path) -> None:
    card = ServingCard.read(tiny_model_dir)
    tok = load_tokenizer(tiny_model_dir / "tokenizer.json", 32, card.pad_token_id, card.pad_token)
    model = torch.jit.load(str(tiny_model_dir / "model.pt"))
    texts = ["a", "b c", "a much longer tweet that goes on and on " * 5]
    together = tok.encode_batch(texts)
    ids = torch.tensor([e.ids for e in together])
    mask = torch.tensor([e.attention_mask for e in together])
    with torch.inference_mode():
        batched = model(ids, mask)
        lengths = [int(m.sum()) for m in mask]
        single = torch.cat(
            [model(ids[i : i + 1, :n], mask[i : i + 1, :n]) for i, n in enumerate(lengths)]
        )
    # padding must not change a text's logits: pooling masks it out
    assert np.allclose(batched.numpy(), single.numpy(), atol=1e-5)


def test_roberta_goes_through_the_same_pipeline_and_serves(tmp_path: Path) -> None:
    model_dir = build_tiny_model_dir(tmp_path, "roberta")
    card = ServingCard.read(model_dir)
    assert (card.pad_token, card.pad_token_id) == ("<pad>", 1)
    server = PredictorProcess(model_dir, tmp_path / "p.log").start().wait_ready()
    try:
        r = httpx.post(
            f"{server.url}/v1/models/sentiment:predict",
            json={"instances": ["I love it", "I hate it, it is the worst thing ever"]},
        )
        assert r.status_code == 200, r.text
        predictions = r.json()["predictions"]
        assert [p["label"] in LABELS for p in predictions] == [True, True]
        assert abs(sum(predictions[0]["probabilities"].values()) - 1) < 1e-5
    finally:
        server.stop()
