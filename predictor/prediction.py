"""The domain answer for one text, shared by the model, the wire codecs and the feature store.

It lives apart from `predictor.protocol` so the storage layer never imports the wire layer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prediction:
    """The answer for one instance, independent of the wire format."""

    label: str
    score: float
    probabilities: dict[str, float]
    truncated: bool = False
    author: str | None = None
    tweet_id: str | None = None
