"""Results for people (a markdown table, a PNG) and for machines (JSON)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # no pyplot: files only, never a window or global state

from loadtest.stats import Summary

COLUMNS = (
    "run",
    "req/s",
    "texts/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "ok",
    "errors",
    "cache hits",
    "client CPU s",
)


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _row(s: Summary) -> list[str]:
    errors = ", ".join(f"{k}: {v}" for k, v in s.errors.items()) or "0"
    hits = "n/a" if s.cache_hit_ratio is None else f"{s.cache_hit_ratio:.1%}"
    return [
        s.label,
        f"{s.requests_per_s:.1f}",
        f"{s.texts_per_s:.1f}",
        _ms(s.p50_ms),
        _ms(s.p90_ms),
        _ms(s.p99_ms),
        _ms(s.max_ms),
        str(s.ok),
        errors,
        hits,
        f"{s.client_cpu_s:.1f}",
    ]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A pipe table that reads in a terminal as well as rendered."""
    rows = [list(r) for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def summary_table(summaries: Iterable[Summary]) -> str:
    return markdown_table(COLUMNS, (_row(s) for s in summaries))


def write_json(path: Path, payload: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def plot_latency_vs_throughput(
    series: Mapping[str, Sequence[Summary]],
    path: Path,
    *,
    ceiling: float | None = None,
    title: str = "Latency against throughput",
) -> Path:
    """p50 (solid) and p99 (dashed) against texts/s, one colour per series, in load order.

    The ceiling, if given, is a vertical line: no point can sit right of it
    for long, and the gap to it is what the serving stack costs.
    """
    fig = Figure(figsize=(8, 5), dpi=120)
    ax = fig.subplots()
    for n, (name, points) in enumerate(series.items()):
        # in load order, so a curve that bends back (overload) shows as such
        pts = sorted(
            (p for p in points if p.p50_ms is not None),
            key=lambda p: p.concurrency or p.offered_rate or 0,
        )
        if not pts:
            continue
        colour = f"C{n}"
        x = [p.texts_per_s for p in pts]
        p50 = [p.p50_ms or 0.0 for p in pts]
        p99 = [p.p99_ms or 0.0 for p in pts]
        ax.plot(x, p50, "o-", color=colour, label=f"{name} p50")
        ax.plot(x, p99, "s--", color=colour, alpha=0.7, label=f"{name} p99")
        for p in pts:
            tag = f"c={p.concurrency}" if p.concurrency else f"{p.offered_rate:g}/s"
            ax.annotate(
                tag,
                (p.texts_per_s, p.p50_ms or 0),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    if ceiling is not None:
        ax.axvline(ceiling, color="k", linestyle=":", label=f"model ceiling {ceiling:.0f}/s")
    ax.set_xscale("log")  # model-bound and cache-hit series differ by ~30x
    ax.set_xlabel("throughput (texts/s, log)")
    ax.set_ylabel("latency (ms, log)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
