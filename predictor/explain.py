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

`python -m predictor.explain "text" --png out.png` asks a running predictor
and renders the words shaded by contribution (matplotlib is imported only
there: it is not in the serving image).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
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


# --- the command line: ask a running predictor, render for people ----------------------------


def render_png(explanation: dict[str, Any], score: float, path: Path) -> None:
    """The words in reading order on a diverging scale: green supported the label, red argued
    against it, white did nothing; the colour bar gives the probability change."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import colormaps
    from matplotlib.colors import TwoSlopeNorm

    words: list[str] = explanation["words"]
    values: list[float] = explanation["contributions"]
    span = max([abs(v) for v in values] + [1e-3])
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-span, vmax=span)
    cmap = colormaps["RdYlGn"]
    fig = plt.figure(figsize=(10, 1.2 + 0.45 * (1 + len(" ".join(words)) // 70)))
    ax = fig.add_axes((0.02, 0.25, 0.96, 0.6))
    ax.set_axis_off()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    x, y, line = 0.0, 1.0, 0.0
    for word, value in zip(words, values, strict=True):
        shade = {"facecolor": cmap(norm(value)), "edgecolor": "none", "pad": 2}
        t = ax.text(x, y, word, fontsize=13, va="top", ha="left", transform=ax.transAxes,
                    bbox=shade)  # fmt: skip
        box = t.get_window_extent(renderer).transformed(ax.transAxes.inverted())
        line = max(line, box.height)
        if x > 0 and box.x1 > 1.0:  # wrap: move the word to a new line
            x, y = 0.0, y - line * 1.6
            t.set_position((x, y))
            box = t.get_window_extent(renderer).transformed(ax.transAxes.inverted())
        x = box.x1 + 0.012
    ax.set_title(f"{explanation['label']} ({score:.2f}): {METHOD}", fontsize=11, loc="left")
    bar = fig.add_axes((0.25, 0.1, 0.5, 0.06))
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), cax=bar, orientation="horizontal",
                 label=f"drop in P({explanation['label']}) without the word")  # fmt: skip
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    import httpx
    import orjson

    parser = argparse.ArgumentParser(
        prog="python -m predictor.explain",
        description="Ask a running predictor why it labels a text as it does; optionally "
        "render the words shaded by contribution.",
    )
    parser.add_argument("text")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="Predictor base URL.")
    parser.add_argument("--model", default="sentiment", help="Model name.")
    parser.add_argument("--png", type=Path, help="Write the shaded words here.")
    args = parser.parse_args(argv)
    resp = httpx.post(
        f"{args.url.rstrip('/')}/v1/models/{args.model}:explain",
        json={"instances": [args.text]},
        timeout=60,
    )
    if resp.status_code != 200:
        print(f"error {resp.status_code}: {resp.text}", file=sys.stderr)
        return 1
    body = resp.json()
    print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    if args.png:
        render_png(body["explanations"][0], body["predictions"][0]["score"], args.png)
        print(f"wrote {args.png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
