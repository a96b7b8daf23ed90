"""Results for people (markdown tables, PNGs, report.md) and for machines (JSON)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # no pyplot: files only, never a window or global state

from loadtest import spy
from loadtest.outcome import HOT, Bench, CeilingPoint, Ratio, ratios
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
    ceilings: Mapping[str, float] | None = None,
    title: str = "Latency against throughput",
) -> Path:
    """p50 (solid) and p99 (dashed) against texts/s, one colour per series, in load order.

    Each ceiling (by precision) is a vertical line: no point of that precision can
    sit right of it for long, and the gap to it is what the serving stack costs.
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
    for n, (name, ceiling) in enumerate((ceilings or {}).items()):
        style = (":", "-.", "--")[n % 3]
        ax.axvline(ceiling, color="k", linestyle=style, label=f"{name} ceiling {ceiling:.0f}/s")
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


# --- the benchmark's report -------------------------------------------------------
def ratio_table(rs: list[Ratio]) -> str:
    def show(r: Ratio) -> list[str]:
        value = "n/a" if r.value is None else f"{r.value:.2f}"
        met = ("info" if not r.target else "n/a") if r.met is None else "met" if r.met else "MISSED"
        return [r.name, value, r.target, met]

    rows = [show(r) for r in rs]
    return markdown_table(
        ["ratio", "value", "target", "verdict"], [[*r[:2], r[2] or "-", *r[3:]] for r in rows]
    )


def ceiling_table(ceiling: Mapping[str, Sequence[CeilingPoint]]) -> str:
    """One workload's in-process figures: a row per precision, graph and batch size."""
    rows = [
        [precision, p.graph, str(p.batch_size), f"{p.texts_per_s:.1f}",
         f"{p.forward_texts_per_s:.1f}", f"{1000 / p.texts_per_s * p.batch_size:.1f}",
         str(p.batches)]
        for precision, points in ceiling.items()
        for p in points
    ]  # fmt: skip
    header = ["precision", "graph", "batch", "texts/s (tokenise + forward)", "texts/s (forward)",
              "ms per batch", "batches"]  # fmt: skip
    return markdown_table(header, rows)


def best_line(bench: Bench, workload: str) -> str:
    """The ceiling each precision's verdict uses: its best batch of either graph."""
    parts = [f"{p} {b.texts_per_s:.1f} texts/s ({b.graph}, batch {b.batch_size})"
             for p in bench.ceiling.get(workload, {})
             if (b := bench.best_ceiling(workload, p))]  # fmt: skip
    return "Ceiling (best graph and batch): " + ("; ".join(parts) or "not measured") + "."


def batch1_table(bench: Bench) -> str:
    """Batch-1 latency per text in process, every artefact and graph beside the
    huggingfaceserver pattern, a column per workload: the c=1 target is read from it."""
    workloads = bench.workloads
    measured = [(prec, pts) for w in workloads for prec, pts in bench.ceiling.get(w, {}).items()]
    keys = dict.fromkeys((prec, p.graph) for prec, pts in measured for p in pts)

    def ms(w: str, prec: str, graph: str) -> str:
        pts = bench.ceiling.get(w, {}).get(prec, [])
        one = next((p for p in pts if p.batch_size == 1 and p.graph == graph), None)
        return _ms(1000 / one.texts_per_s) if one and one.texts_per_s else "-"

    rows = [[f"ours, {prec} {graph}", *(ms(w, prec, graph) for w in workloads)]
            for prec, graph in keys]  # fmt: skip
    rows.append(["huggingfaceserver pattern (transformers fp32)",
                 *(_ms(bench.hf_batch1_ms.get(w)) for w in workloads)])  # fmt: skip
    return markdown_table(["batch 1, ms per text (tokenise + forward)", *workloads], rows)


def profile_tables(bench: Bench) -> str:
    """--profile: where each point's time went, per thread and component (loadtest/spy.py)."""
    parts = []
    for label, prof in bench.profiles.items():
        threads = {t: Counter(c) for t, c in prof["threads"].items()}
        rows = spy.table(threads, int(prof["rate_hz"]), int(prof["requests"]) or None)
        parts.append(f"### {label}\n\n{markdown_table(spy.TABLE_HEADER, rows)}")
    return "\n\n".join(parts)


def agreement_text(agreement: Mapping[str, Any]) -> str:
    """The export's bf16-vs-fp32 check as one line, or why there is none."""
    if not agreement:
        return "no bf16 entry in the model card (exported before bf16, or not exported)"
    verdict = "written" if agreement.get("file") else f"REFUSED ({agreement.get('refused')})"
    return (
        f"bf16 file {verdict}: same label as fp32 on {agreement['agreement']:.2%} of "
        f"{agreement['n_texts']} held-out texts (floor {agreement['min_agreement']:.0%}), "
        f"max probability difference {agreement['max_prob_diff']:.4f}, parity with eager "
        f"bf16 {agreement['parity_max_abs_diff']:.2g}"
    )


def plot_ceiling(ceiling: Mapping[str, Sequence[CeilingPoint]], path: Path) -> Path:
    fig = Figure(figsize=(6, 4), dpi=120)
    ax = fig.subplots()
    for n, (precision, points) in enumerate(ceiling.items()):
        sizes = [p.batch_size for p in points]
        ax.plot(sizes, [p.texts_per_s for p in points], "o-", color=f"C{n}",
                label=f"{precision} tokenise + forward")  # fmt: skip
        ax.plot(sizes, [p.forward_texts_per_s for p in points], "s--", color=f"C{n}",
                alpha=0.6, label=f"{precision} forward only")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("texts/s")
    ax.set_title("(1) TorchScript in-process, by batch size and precision")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    return path


def _slug(name: str) -> str:
    return name.replace(" ", "-")


def write_report(bench: Bench, out: Path, command: str) -> Path:
    """report.md, bench.json, per workload latency_vs_throughput-W.png and ceiling-W.png,
    and profiles.md with --profile, under `out`."""
    cfg = bench.config
    env = "\n".join(f"- {k}: {v}" for k, v in bench.environment.items())
    notes = "\n".join(f"- {n}" for n in bench.notes) or "- none"
    title = f"{bench.environment.get('model', '')} on {bench.environment.get('cpu', '')}"
    sections = []
    for w in bench.workloads:
        steps = bench.steps.get(w, {})
        series = {k: v for k, v in steps.items() if "open-loop" not in k}
        per = bench.ceiling.get(w, {})
        ceilings = {p: best.texts_per_s for p in per if (best := bench.best_ceiling(w, p))}
        plot_latency_vs_throughput(series, out / f"latency_vs_throughput-{_slug(w)}.png",
                                   ceilings=ceilings, title=f"{w}: {title}")  # fmt: skip
        if per:
            plot_ceiling(per, out / f"ceiling-{_slug(w)}.png")
        rows = [s for points in steps.values() for s in points]
        sections.append(f"""## Workload `{w}`: {bench.environment.get(f"texts ({w})", "")}

### (1) Ceiling: TorchScript in-process, as exported and frozen

{ceiling_table(per)}

{best_line(bench, w)}

![ceiling by batch size](ceiling-{_slug(w)}.png)

### Servers (wire {cfg.get("wire")}, {cfg.get("seconds")} s per point, one text per request)

{summary_table(rows)}

![latency against throughput](latency_vs_throughput-{_slug(w)}.png)
""")
    hot = bench.steps.get(HOT, {})
    hot_rows = [s for points in hot.values() for s in points]
    profiles = profile_tables(bench)
    profile_section = ""
    if profiles:
        (out / "profiles.md").write_text(f"# Where the time went\n\n{profiles}\n", "utf-8")
        profile_section = f"\n## Profiles (py-spy, --profile)\n\n{profiles}\n"
    text = f"""# Benchmark: predictor against its ceiling and baselines, by workload and precision

Command: `{command}`

{env}

## Ratios (same run, same machine)

{ratio_table(ratios(bench))}

bf16 against fp32 at export: {agreement_text(bench.agreement)}.

## Batch-1 latency in process

{batch1_table(bench)}

{"".join(sections)}
## Cache-hit path and no-op floor (Zipf hot set)

{summary_table(hot_rows) if hot_rows else "not measured"}

Client CPU is the load generator's own CPU time during the point: it shares the
machine's cores with the server, so it is part of what limits the server here.
{profile_section}
## Notes

{notes}
"""
    path = out / "report.md"
    path.write_text(text, encoding="utf-8")
    write_json(out / "bench.json", {**asdict(bench), "ratios": [asdict(r) for r in ratios(bench)]})
    return path
