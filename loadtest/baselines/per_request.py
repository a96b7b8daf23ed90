"""The usual KServe custom predictor: one forward pass per request, inside `predict`.

This is the pattern most KServe examples show: a `kserve.Model` whose `load`
reads the model and whose synchronous `predict` tokenises and runs the
request's texts on the event loop, served by the stock `ModelServer`. Same
model directory and tokenizer as the predictor, so the difference the
benchmark shows is the serving design (batching across requests, the engine
thread), not the model. v1 REST only: that is what the benchmark sends.

Run: python -m loadtest.baselines.per_request --model_name sentiment --http_port 8090
Model directory from PREDICTOR_MODEL_DIR; torch threads from PREDICTOR_CPU_THREADS
(0 or unset: torch's default); PREDICTOR_PRECISION=bf16 serves model-bf16.pt, anything
else model.pt (the benchmark compares each precision with its own baseline).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from kserve import Model, ModelServer

from predictor import DEFAULT_MODEL_NAME
from predictor.modelcard import PRECISION_FILES, ServingCard
from predictor.serving import kserve_compat
from predictor.tokenization import encode, load_tokenizer


class PerRequestModel(Model):
    """Tokenise + forward per request; blocks the loop while it runs, as the pattern does."""

    def __init__(self, name: str, model_dir: Path, precision: str = "fp32") -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.model_file = model_dir / PRECISION_FILES[precision]
        self.labels: list[str] = []

    def load(self) -> bool:
        self.card = card = ServingCard.read(self.model_dir)
        self.labels = card.labels
        self.tokenizer = load_tokenizer(
            self.model_dir / "tokenizer.json",
            card.max_seq_length,
            card.pad_token_id,
            card.pad_token,
        )
        self.model = torch.jit.load(str(self.model_file), map_location="cpu").eval()
        self.ready = True
        return self.ready

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """ids and mask for one request's texts, padded to its longest."""
        batch = encode(self.tokenizer, texts)
        return batch.input_ids, batch.attention_mask

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        texts = [t if isinstance(t, str) else t["text"] for t in payload["instances"]]
        input_ids, attention_mask = self.encode(texts)
        with torch.inference_mode():
            logits = self.model(input_ids, attention_mask).float()
            probs = torch.softmax(logits, dim=-1)
        predictions = []
        for row in probs.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            predictions.append(
                {
                    "label": self.labels[best],
                    "score": row[best],
                    "probabilities": dict(zip(self.labels, row, strict=True)),
                }
            )
        return {"predictions": predictions}


def serve(model_class: Callable[[str, Path, str], Model]) -> None:
    """Threads, precision and directory from the environment, as the predictor reads them."""
    threads = int(os.environ.get("PREDICTOR_CPU_THREADS", "0") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    precision = "bf16" if os.environ.get("PREDICTOR_PRECISION") == "bf16" else "fp32"
    model = model_class(
        kserve_compat.cli_parser().parse_known_args()[0].model_name or DEFAULT_MODEL_NAME,
        Path(os.environ["PREDICTOR_MODEL_DIR"]),
        precision,
    )
    model.load()
    ModelServer().start([model])


def main() -> None:
    serve(PerRequestModel)


if __name__ == "__main__":
    main()
