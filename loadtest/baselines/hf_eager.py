"""KServe's huggingfaceserver pattern on the same weights: eager transformers, per request.

huggingfaceserver is not published on PyPI (it ships inside KServe's repository
and images), so the benchmark rebuilds what it does for a text-classification
task: a `kserve.Model` holding the eager PyTorch transformers model in fp32 and
the Hugging Face tokenizer, tokenising each request (pad to its longest,
truncate) and running one forward per request, no cross-request batching. The
weights are the served model's own, read out of its TorchScript file into the
eager module they were traced from, so every figure compares the serving design
on identical answers. The encoder directory the card names is needed (the
default all-MiniLM-L6-v2 comes from its PyPI package); transformers is a
training dependency.

Run: python -m loadtest.baselines.hf_eager --model_name sentiment --http_port 8090
(environment as loadtest.baselines.per_request; PREDICTOR_PRECISION is ignored:
huggingfaceserver serves fp32 on a CPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from loadtest.baselines.per_request import PerRequestModel, serve
from predictor.modelcard import ServingCard
from training.encoder import load_encoder, packaged_encoder_dir

DEFAULT_ENCODER = "all-MiniLM-L6-v2"  # how training.build names the packaged encoder


def source_encoder(card: ServingCard) -> Path | None:
    """The Hugging Face directory the model was trained from, if it is on this machine."""
    named = str((card.model_extra or {}).get("encoder") or "")
    if named.startswith(DEFAULT_ENCODER):
        return packaged_encoder_dir()
    return Path(named) if named and Path(named, "config.json").is_file() else None


class HfEagerModel(PerRequestModel):
    """The eager encoder + pooled head with the TorchScript file's weights, HF tokenizer."""

    def load(self) -> bool:
        self.model_file = self.model_dir / "model.pt"  # fp32: the weights to copy out
        super().load()
        card = self.card
        training: dict[str, Any] = (card.model_extra or {}).get("training") or {}
        source = source_encoder(card)
        if source is None:
            raise FileNotFoundError(f"the encoder of {self.model_dir} is not on this machine")
        encoder = load_encoder(
            source,
            len(card.labels),
            card.max_seq_length,
            int(training.get("pool_layers") or 1),
        )
        # TorchScript also keeps the non-persistent buffers (position ids); every weight must land
        missing, _ = encoder.module.load_state_dict(self.model.state_dict(), strict=False)
        if missing:
            raise KeyError(f"{self.model_file} lacks weights of the eager model: {missing}")
        self.model = encoder.module.eval()
        from transformers import AutoTokenizer

        self.hf_tokenizer = AutoTokenizer.from_pretrained(encoder.source, local_files_only=True)
        self.max_length = card.max_seq_length
        return self.ready

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.hf_tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return batch["input_ids"], batch["attention_mask"]


if __name__ == "__main__":
    serve(HfEagerModel)
