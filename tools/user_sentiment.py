"""Command-line client of `GET /v1/users/{username}/sentiment`, with a chart.

`python -m tools.user_sentiment USERNAME --url http://127.0.0.1:8080 [--png out.png]`.
It is a client, not part of serving: it lives outside `predictor/` so the
serving image carries no matplotlib.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from predictor.routes.users import polarity
from tools.http import CallFailed, call, fail


def plot(summary: dict[str, Any], out: Path) -> None:
    """Polarity of each prediction over time, with the per-bucket mean on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    def ts(s: str) -> float:
        return float(mdates.date2num(datetime.fromisoformat(s.replace("Z", "+00:00"))))

    colours = {"positive": "tab:green", "negative": "tab:red"}
    fig, ax = plt.subplots(figsize=(9, 4))
    for p in summary.get("points", []):
        ax.scatter(
            ts(p["t"]),
            polarity(p["label"], p["score"]),
            s=18,
            color=colours.get(p["label"], "tab:gray"),
            alpha=0.7,
        )
    mids = [b for b in summary["trend"]["buckets"] if b["mean_polarity"] is not None]
    ax.plot(
        [(ts(b["start"]) + ts(b["end"])) / 2 for b in mids],
        [b["mean_polarity"] for b in mids],
        color="black",
        marker="o",
        label="mean per bucket",
    )
    ax.axhline(0, color="gray", linewidth=0.8)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("polarity (+score positive, -score negative)")
    ax.set_title(
        f"@{summary['username']}: {summary['count']} predictions, "
        f"trend {summary['trend']['direction']}"
    )
    ax.legend(loc="lower left")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.user_sentiment",
        description="Show a user's sentiment from a running predictor; optionally chart it.",
    )
    parser.add_argument("username")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="Predictor base URL.")
    parser.add_argument("--window-days", type=float, default=30.0)
    parser.add_argument("--buckets", type=int, default=10)
    parser.add_argument("--png", type=Path, help="Write a chart of sentiment over time here.")
    parser.add_argument(
        "--token-file",
        type=Path,
        required=True,
        help="File holding a reader token of the predictor (the route needs one).",
    )
    args = parser.parse_args(argv)
    try:
        token = next((t.strip() for t in args.token_file.read_text().splitlines() if t.strip()), "")
    except OSError as exc:
        print(f"cannot read the token file {args.token_file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        summary = call(
            "GET",
            f"{args.url.rstrip('/')}/v1/users/{args.username}/sentiment",
            params={"window_days": args.window_days, "buckets": args.buckets, "points": True},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except CallFailed as err:
        return fail(err)
    shown = {k: v for k, v in summary.items() if k != "points"}
    print(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
    if args.png:
        plot(summary, args.png)
        print(f"wrote {args.png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
