"""The benchmark's stand-ins answer like the predictor: the per-request model, the
huggingfaceserver pattern (eager transformers) and the no-op."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.inprocess import InProcessPredictor
from harness.servers import Predictor, PredictorProcess
from loadtest.baselines.hf_eager import HfEagerModel
from loadtest.clients import Wire
from loadtest.corpus import TextPool, unique_texts
from loadtest.measure import measure

TEXTS = ["I love this so much", "worst service ever"]


def serve(
    module: str, model_dir: Path, log: Path, env: dict[str, str] | None = None
) -> PredictorProcess:
    proc = PredictorProcess(model_dir, log, env=env or {}, module=module)
    return proc.start().wait_ready(90)


@pytest.fixture(scope="module")
def noop(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PredictorProcess]:
    proc = serve("loadtest.baselines.noop", tiny_model_dir, tmp_path_factory.mktemp("noop") / "log")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def per_request(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, predictor: PredictorProcess
) -> Iterator[PredictorProcess]:
    """The baseline at the precision the predictor chose (the benchmark pairs them so)."""
    meta = httpx.get(f"{predictor.url}/v2/models/sentiment", timeout=10).json()
    env = {"PREDICTOR_PRECISION": meta["parameters"]["precision"]}
    log = tmp_path_factory.mktemp("per-request") / "log"
    proc = serve("loadtest.baselines.per_request", tiny_model_dir, log, env)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def hf_eager(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PredictorProcess]:
    log = tmp_path_factory.mktemp("hf-eager") / "log"
    proc = serve(
        "loadtest.baselines.hf_eager", tiny_model_dir, log, {"PREDICTOR_PRECISION": "fp32"}
    )
    yield proc
    proc.stop()


def predict(proc: Predictor, texts: list[str]) -> list[dict[str, object]]:
    resp = httpx.post(f"{proc.url}/v1/models/sentiment:predict", json={"instances": texts})
    assert resp.status_code == 200, resp.text
    return list(resp.json()["predictions"])


def assert_same_answers(
    ours: list[dict[str, object]], theirs: list[dict[str, object]], tolerance: float
) -> None:
    assert [p["label"] for p in theirs] == [p["label"] for p in ours]
    for a, b in zip(ours, theirs, strict=True):
        pa, pb = a["probabilities"], b["probabilities"]
        assert isinstance(pa, dict) and isinstance(pb, dict)
        assert pa.keys() == pb.keys()
        assert all(abs(pa[k] - pb[k]) < tolerance for k in pa)


def test_per_request_baseline_answers_with_the_same_model(
    per_request: PredictorProcess, predictor: PredictorProcess
) -> None:
    assert_same_answers(predict(predictor, TEXTS), predict(per_request, TEXTS), 1e-4)


def test_hf_eager_runs_transformers_own_classifier_forward_with_the_served_weights(
    tiny_model_dir: Path,
) -> None:
    """What huggingfaceserver runs (the sequence-classification class, its default attention,
    the HF tokenizer), answering as model.pt does to float noise."""
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from predictor.modelcard import ServingCard
    from predictor.tokenization import encode, load_tokenizer

    model = HfEagerModel("hf", tiny_model_dir)
    model.load()
    hf = model.model.model
    assert isinstance(hf, PreTrainedModel) and type(hf).__name__.endswith(
        "ForSequenceClassification"
    )
    assert hf.config._attn_implementation == "sdpa"  # transformers' default here, not eager
    assert isinstance(model.tokenizer, PreTrainedTokenizerBase)
    texts = [*TEXTS, "ok", "a much longer text, so the batch pads the shorter ones " * 3]
    theirs = torch.softmax(model.logits(model.tokenize(texts)), dim=-1)
    card = ServingCard.read(tiny_model_dir)
    tok = load_tokenizer(tiny_model_dir / "tokenizer.json", card.max_seq_length,
                         card.pad_token_id, card.pad_token)  # fmt: skip
    batch = encode(tok, texts)
    scripted = torch.jit.load(str(tiny_model_dir / "model.pt"))
    with torch.inference_mode():
        ours = torch.softmax(scripted(batch.input_ids, batch.attention_mask), dim=-1)
    assert float((theirs - ours).abs().max()) < 1e-5


def test_hf_eager_baseline_rebuilds_the_served_model_from_its_weights(
    hf_eager: PredictorProcess, tiny_model_dir: Path
) -> None:
    """Served: same weights, transformers' forward, HF tokenizer: the fp32 file's answers."""
    log = hf_eager.log_path.parent / "fp32.log"
    fp32 = InProcessPredictor(tiny_model_dir, log, env={"PREDICTOR_PRECISION": "fp32"})
    fp32.start().wait_ready(90)
    try:
        ours = predict(fp32, TEXTS)
    finally:
        fp32.stop()
    assert_same_answers(ours, predict(hf_eager, TEXTS), 1e-4)


async def test_noop_answers_every_protocol_without_a_model(noop: PredictorProcess) -> None:
    preds = predict(noop, TEXTS)
    assert len(preds) == 2
    for p in preds:
        probs = p["probabilities"]
        assert isinstance(probs, dict)
        assert list(probs.values()) == pytest.approx([1 / 3] * 3)
    pool = TextPool(TEXTS, "test")
    for wire in Wire:
        summary = await measure(
            wire, unique_texts(pool), url=noop.url, grpc_target=noop.grpc_target,
            concurrency=2, max_requests=10, max_seconds=30, progress=False,
        )  # fmt: skip
        assert summary.ok == 10, summary.errors
        # no model, no cache: the hit ratio is absent, not zero
        assert summary.cache_hit_ratio is None
