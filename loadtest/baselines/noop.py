"""The framework floor: our server, edge and wire formats, with a model that does nothing.

`NoopModel` is the SentimentModel minus the engine and batcher: it decodes
and encodes like the real one but answers a uniform distribution at once.
Its throughput is the most any cache-hit path on the same server can reach.
It is started through the predictor's own entry point, so every flag,
middleware and setting is the same as in production.

Run: python -m loadtest.baselines.noop --model_name sentiment --http_port 8090 --grpc_port 8091
(PREDICTOR_MODEL_DIR supplies the labels from its model card.)
"""

from __future__ import annotations

import sys
from typing import Any

import predictor.__main__ as entry
from predictor.model import Answer, SentimentModel
from predictor.modelcard import ServingCard
from predictor.prediction import Prediction
from predictor.protocol import Decoded


class NoopModel(SentimentModel):
    """Same request path as SentimentModel; `predict` skips the model entirely."""

    async def load_async(self) -> None:
        self.card = ServingCard.read(self.settings.model_dir)
        share = 1.0 / len(self.card.labels)
        probabilities = dict.fromkeys(self.card.labels, share)
        self._answer = Prediction(self.card.labels[0], share, probabilities)
        self.ready = True

    async def predict(
        self, payload: Decoded, headers: dict[str, str] | None = None, *_: Any
    ) -> Answer:
        return Answer(payload, [self._answer] * len(payload.instances))

    async def drain(self, flush_timeout_s: float) -> None:
        self.ready = False


def main(argv: list[str] | None = None) -> int:
    return entry.main(argv, model_cls=NoopModel)


if __name__ == "__main__":
    sys.exit(main())
