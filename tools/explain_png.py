"""`python -m tools.explain_png "text" [--png out.png]`: ask a running predictor why it
labels a text as it does (`:explain`, leave-one-word-out occlusion in
`predictor.explain`) and draw the words shaded by contribution. A client, not
serving: matplotlib is imported only here and is not in the serving image.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from predictor import DEFAULT_MODEL_NAME
from predictor.explain import METHOD
from tools.http import CallFailed, call, fail


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
    import orjson

    parser = argparse.ArgumentParser(
        prog="python -m tools.explain_png",
        description="Ask a running predictor why it labels a text as it does; optionally "
        "render the words shaded by contribution.",
    )
    parser.add_argument("text")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="Predictor base URL.")
    parser.add_argument("--model", default=DEFAULT_MODEL_NAME, help="Model name.")
    parser.add_argument("--png", type=Path, help="Write the shaded words here.")
    args = parser.parse_args(argv)
    url = f"{args.url.rstrip('/')}/v1/models/{args.model}:explain"
    try:
        body = call("POST", url, json={"instances": [args.text]})
    except CallFailed as err:
        return fail(err)
    print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    if args.png:
        render_png(body["explanations"][0], body["predictions"][0]["score"], args.png)
        print(f"wrote {args.png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
