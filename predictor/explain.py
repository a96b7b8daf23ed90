"""Why the model answered what it did: leave-one-word-out occlusion, through the batcher.

For a text of n words the model also reads the n texts with one word left out;
a word's contribution is how much the predicted label's probability drops
without it (negative: the word argued against the label). Occlusion needs
nothing from the model but forward passes, so it works on any exported
TorchScript file, and the n + 1 texts go through the same dynamic batcher as
predictions: they share the engine fairly instead of stalling it, and they are
coalesced into ceil((n + 1) / batch cap) forward passes. Gradient methods
(integrated gradients, saliency) would need the embedding layer exposed and a
backward pass in the serving graph; occlusion measures the answer itself.

Bounded: at most `PREDICTOR_EXPLAIN_MAX_WORDS` words per text and
`PREDICTOR_EXPLAIN_MAX_TEXTS` texts per request; over a cap is a 400 that
says which.

`python -m tools.explain_png "text" --png out.png` asks a running predictor
and renders the words shaded by contribution (a developer tool: matplotlib
is not in the serving image).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from predictor.batching import Row
from predictor.errors import BadInput
from predictor.prediction import Prediction
from predictor.protocol import encode_v1
from predictor.settings_base import PredictorSettings

METHOD = "leave-one-word-out occlusion"


class ExplainSettings(PredictorSettings):
    """Bounds of `:explain`: each word of each text costs one more text through the model."""

    explain_max_words: int = Field(
        64,
        ge=1,
        le=512,
        description="Most whitespace-separated words per text on `:explain` (a text of n "
        "words costs n + 1 texts through the model); more is a 400.",
    )
    explain_max_texts: int = Field(
        8,
        ge=1,
        le=256,
        description="Most instances per `:explain` request; more is a 400.",
    )


def split_words(text: str) -> list[str]:
    """Words as the user sees them: runs of non-whitespace."""
    return text.split()


def occlusions(words: list[str]) -> list[str]:
    """The text once per word, with that word left out."""
    return [" ".join(words[:i] + words[i + 1 :]) for i in range(len(words))]


def check_bounds(texts: list[str], settings: ExplainSettings) -> None:
    """400 before any work when a request would cost more than the caps allow."""
    if len(texts) > settings.explain_max_texts:
        raise BadInput(
            f":explain takes at most {settings.explain_max_texts} instances per request "
            f"(PREDICTOR_EXPLAIN_MAX_TEXTS), got {len(texts)}"
        )
    for n, text in enumerate(texts):
        count = len(split_words(text))
        if count > settings.explain_max_words:
            raise BadInput(
                f"instances[{n}] has {count} words; :explain takes at most "
                f"{settings.explain_max_words} per text (PREDICTOR_EXPLAIN_MAX_WORDS)"
            )


@dataclass(frozen=True)
class Explanation:
    """One text's prediction and each word's contribution toward its label."""

    prediction: Prediction
    words: list[str]
    contributions: list[float]

    def v1(self) -> dict[str, Any]:
        return {
            "label": self.prediction.label,
            "method": METHOD,
            "words": self.words,
            "contributions": self.contributions,
        }


@dataclass(frozen=True)
class Explained:
    """What `SentimentModel.explain` hands to `postprocess`."""

    explanations: list[Explanation]

    def v1(self) -> dict[str, Any]:
        """KServe's v1 explain response: `predictions` as `:predict` gives, plus `explanations`."""
        body = encode_v1([e.prediction for e in self.explanations])
        body["explanations"] = [e.v1() for e in self.explanations]
        return body


Submit = Callable[[list[str]], Awaitable[list[Row]]]


async def explain_texts(
    texts: list[str], submit: Submit, to_prediction: Callable[[Row], Prediction]
) -> list[Explanation]:
    """Every text and its occlusions in one `submit`, so the batcher coalesces them; a
    variant that occurs twice (repeated words, repeated texts) is computed once."""
    words = [split_words(t) for t in texts]
    wanted = [v for t, w in zip(texts, words, strict=True) for v in (t, *occlusions(w))]
    unique = list(dict.fromkeys(wanted))
    rows = dict(zip(unique, await submit(unique), strict=True))
    out: list[Explanation] = []
    for text, ws in zip(texts, words, strict=True):
        base = rows[text]
        prediction = to_prediction(base)
        best = int(base.probabilities.argmax())
        drops = [
            float(base.probabilities[best] - rows[v].probabilities[best]) for v in occlusions(ws)
        ]
        out.append(Explanation(prediction, ws, drops))
    return out
