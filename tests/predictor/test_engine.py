"""The Engine picks its precision from the hardware and the model directory, and serves it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from predictor.engine import FREEZE_TOLERANCE, Engine, ModelLoadError, resolve_precision
from predictor.hardware import cpu_has_native_bf16
from predictor.modelcard import PRECISION_FILES, ServingCard
from predictor.settings import ServingSettings
from training.encoder import load_encoder
from training.export import export
from training.tiny import build_tiny_encoder

TEXTS = ["I love this", "worst day ever", "the bus is at 9", "ok then, fine, whatever you say"]


@pytest.fixture(scope="module")
def both_precisions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model exported at fp32 and bf16 (agreement floor 0: random weights tie often)."""
    root = tmp_path_factory.mktemp("engine")
    enc = load_encoder(build_tiny_encoder(root / "hf"), 3, 32)
    card = ServingCard(name="sentiment", version="t1", labels=["negative", "neutral", "positive"],
                       max_seq_length=enc.max_seq_length, pad_token_id=enc.pad_token_id,
                       pad_token=enc.pad_token)  # fmt: skip
    out = root / "model"
    export(enc.module, card, enc.tokenizer_json, out, heldout=TEXTS, bf16_min_agreement=0.0)
    return out


@pytest.fixture(scope="module")
def fp32_only(both_precisions: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same directory as an older export (or a refused bf16) leaves it: no bf16 file."""
    out = tmp_path_factory.mktemp("fp32-only") / "model"
    shutil.copytree(both_precisions, out)
    (out / PRECISION_FILES["bf16"]).unlink()
    return out


def settings(model_dir: Path, **kw: object) -> ServingSettings:
    return ServingSettings(model_dir=model_dir, cpu_threads=1, **kw)  # type: ignore[arg-type]


def test_auto_on_the_cpu_follows_onednn(both_precisions: Path) -> None:
    expected = "bf16" if cpu_has_native_bf16() else "fp32"
    assert resolve_precision(settings(both_precisions), "cpu") == expected


def test_auto_without_a_bf16_file_is_fp32(fp32_only: Path) -> None:
    assert resolve_precision(settings(fp32_only), "cpu") == "fp32"


def test_auto_on_cuda_is_fp16_unless_half_precision_is_switched_off(fp32_only: Path) -> None:
    assert resolve_precision(settings(fp32_only), "cuda") == "fp16"
    assert resolve_precision(settings(fp32_only, half_precision=False), "cuda") == "fp32"
    assert resolve_precision(settings(fp32_only, precision="bf16"), "cuda") == "bf16"


def test_fp16_on_the_cpu_is_refused_by_name(fp32_only: Path) -> None:
    with pytest.raises(ModelLoadError, match="PREDICTOR_PRECISION=fp16 needs CUDA"):
        Engine(settings(fp32_only, precision="fp16", device="cpu"))


def test_bf16_asked_for_without_its_file_fails_the_load(fp32_only: Path) -> None:
    engine = Engine(settings(fp32_only, precision="bf16", device="cpu"))
    assert engine.precision == "bf16"
    with pytest.raises(ModelLoadError, match=r"model-bf16\.pt"):
        engine.load()


def test_bf16_serves_close_to_fp32(both_precisions: Path) -> None:
    engines = {p: Engine(settings(both_precisions, precision=p, device="cpu"))
               for p in ("fp32", "bf16")}  # fmt: skip
    probs = {}
    for name, engine in engines.items():
        engine.load()
        engine.warmup()
        assert engine.precision == name
        probs[name] = engine.infer(TEXTS).probabilities
        engine.shutdown()
    assert probs["bf16"].dtype == np.float32  # the wire type does not change
    diff = np.abs(probs["bf16"] - probs["fp32"]).max()
    assert 0 < diff < 0.05  # really a different precision, and close


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_frozen_graph_answers_as_the_file_does(both_precisions: Path, precision: str) -> None:
    """Freezing inlines the weights (no parameters left on the module) and is kept only
    within the precision's tolerance of the file; switched off, the file is served as is."""
    frozen = Engine(settings(both_precisions, precision=precision))
    plain = Engine(settings(both_precisions, precision=precision, freeze=False))
    frozen.load()
    plain.load()
    assert frozen.freeze_max_diff is not None and plain.freeze_max_diff is None
    assert not list(frozen._model.named_parameters())  # type: ignore[union-attr]
    assert list(plain._model.named_parameters())  # type: ignore[union-attr]
    diff = np.abs(frozen.infer(TEXTS).probabilities - plain.infer(TEXTS).probabilities).max()
    assert diff <= FREEZE_TOLERANCE[precision]
    assert [frozen.infer([t]).probabilities.argmax() for t in TEXTS] == [
        plain.infer([t]).probabilities.argmax() for t in TEXTS
    ]
