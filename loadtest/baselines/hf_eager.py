"""KServe's huggingfaceserver, as it serves text classification, on the same weights.

huggingfaceserver is not published on PyPI (it ships inside KServe's repository
and images), so this rebuilds what its encoder model does for a
sequence-classification task, step for step:

- the model is transformers' own `AutoModelForSequenceClassification`, fp32 on
  the CPU, with its default attention (SDPA here), in `eval()`;
- `preprocess` runs the Hugging Face tokenizer on each request's texts
  (pad to the request's longest, truncate), on the event loop;
- `predict` (a coroutine, on the event loop) runs one forward per request
  under `torch.no_grad()`, `return_dict=True`; no batching across requests;
- its request logger is off by default, and so it is here.

The weights are the served model's own, read out of its fp32 TorchScript file:
the encoder's into the sequence-classification model's base model, and our head
(mean pooling of the last `pool_layers` hidden states, temperature folded in)
applied to the hidden states that forward returns. The stock head (pooler +
classifier) still runs, so the cost is the stock forward's, and its logits are
dropped, so the answers are the served model's to float noise
(tests/loadtest/test_baselines.py). Two deliberate differences, both too small to
time: truncation at the card's max_seq_length (tweets never reach it) and answers
in the predictor's form (label + probabilities) instead of a bare class index, so
the check above can compare them. transformers is a training dependency; the
encoder directory the card names must be on this machine.

Run: python -m loadtest.baselines.hf_eager --model_name sentiment --http_port 8090
(environment as loadtest.baselines.per_request; PREDICTOR_PRECISION is ignored:
huggingfaceserver serves fp32 on a CPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from kserve import Model
from torch import nn

from loadtest.baselines.per_request import serve
from predictor.modelcard import ServingCard
from training.encoder import mean_pool, packaged_encoder_dir

DEFAULT_ENCODER = "all-MiniLM-L6-v2"  # how training.build names the packaged encoder


def source_encoder(card: ServingCard) -> Path | None:
    """The Hugging Face directory the model was trained from, if it is on this machine."""
    named = str((card.model_extra or {}).get("encoder") or "")
    if named.startswith(DEFAULT_ENCODER):
        return packaged_encoder_dir()
    return Path(named) if named and Path(named, "config.json").is_file() else None


class HfTwin(nn.Module):
    """The stock sequence-classification forward, answering with the served model's logits."""

    def __init__(self, model: nn.Module, head: nn.Linear | None, pool_layers: int,
                 temperature: float = 1.0) -> None:  # fmt: skip
        super().__init__()
        self.model = model
        self.head = head
        self.pool_layers = pool_layers
        self.temperature = temperature

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        if self.head is None:  # a classification checkpoint: its own head is the served one
            return self.model(**batch, return_dict=True).logits / self.temperature
        out = self.model(**batch, return_dict=True, output_hidden_states=True)
        mask = batch["attention_mask"]
        pooled = [mean_pool(h, mask) for h in out.hidden_states[-self.pool_layers :]]
        logits: torch.Tensor = self.head(torch.cat(pooled, dim=-1))
        return logits


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def hf_twin(model_dir: Path) -> HfTwin:
    """transformers' AutoModelForSequenceClassification carrying the weights of `model.pt`."""
    from transformers import AutoModelForSequenceClassification

    card = ServingCard.read(model_dir)
    source = source_encoder(card)
    if source is None:
        raise FileNotFoundError(f"the encoder of {model_dir} is not on this machine")
    state = dict(torch.jit.load(str(model_dir / "model.pt"), map_location="cpu").state_dict())
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=len(card.labels), local_files_only=True
    )
    if "head.weight" in state:  # training.encoder.PooledClassifier: encoder.* + head.*
        target, weights = model.base_model, _strip(state, "encoder.")
        head: nn.Linear | None = nn.Linear(*reversed(state["head.weight"].shape))
        assert head is not None
        head.load_state_dict(_strip(state, "head."))
        temperature = 1.0
    else:  # ClassifierLogits, maybe wrapped in calibration.TemperatureScaled
        wrapped = "temperature" in state
        target, weights, head = model, _strip(state, "module.model." if wrapped else "model."), None
        temperature = float(state["temperature"]) if wrapped else 1.0
    result = target.load_state_dict(weights, strict=False)
    # the stock pooler is not ours (its output is dropped); TorchScript also saved the
    # non-persistent buffers (position and token type ids), constants transformers rebuilds
    missing = [k for k in result.missing_keys if not k.startswith("pooler.")]
    buffers = {name for name, _ in target.named_buffers()}
    unexpected = [k for k in result.unexpected_keys if k not in buffers]
    if missing or unexpected:
        raise KeyError(f"{model_dir / 'model.pt'} does not fit {type(model).__name__}: "
                       f"missing {missing[:5]}, unexpected {unexpected[:5]}")  # fmt: skip
    training: dict[str, Any] = (card.model_extra or {}).get("training") or {}
    return HfTwin(model.eval(), head, int(training.get("pool_layers") or 1), temperature).eval()


class HfEagerModel(Model):
    """huggingfaceserver's encoder model for text classification: tokenise, one forward."""

    def __init__(self, name: str, model_dir: Path, precision: str = "fp32") -> None:
        super().__init__(name)
        self.model_dir = model_dir  # precision: huggingfaceserver serves fp32 on a CPU
        self.labels: list[str] = []

    def load(self) -> bool:
        from transformers import AutoTokenizer

        card = ServingCard.read(self.model_dir)
        self.labels, self.max_length = card.labels, card.max_seq_length
        self.model = hf_twin(self.model_dir)
        source = source_encoder(card)
        self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        self.ready = True
        return self.ready

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """The stock preprocess: the HF tokenizer on one request, padded to its longest."""
        batch = self.tokenizer(texts, max_length=self.max_length, padding=True,
                               truncation=True, return_tensors="pt")  # fmt: skip
        return dict(batch)

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The stock predict: one forward under no_grad."""
        with torch.no_grad():
            return self.model(**batch)

    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        texts = [t if isinstance(t, str) else t["text"] for t in payload["instances"]]
        return self.tokenize(texts)

    async def predict(self, payload: Any, headers: dict[str, str] | None = None,
                      response_headers: dict[str, str] | None = None) -> Any:  # fmt: skip
        probs = torch.softmax(self.logits(payload), dim=-1).tolist()
        predictions = []
        for row in probs:
            best = max(range(len(row)), key=row.__getitem__)
            probabilities = dict(zip(self.labels, row, strict=True))
            predictions.append(
                {"label": self.labels[best], "score": row[best], "probabilities": probabilities}
            )
        return {"predictions": predictions}


if __name__ == "__main__":
    serve(HfEagerModel)
