"""`make bench-sweep` / `python -m loadtest.sweep`: the batch cap and length window, re-swept.

For each precision, each PREDICTOR_MAX_BATCH_SIZE in `--caps` and each
PREDICTOR_BATCH_LENGTH_WINDOW in `--windows`, one predictor (cache off) and
closed-loop points at 16 and 64 clients on both workloads (`held-out`, `short`;
loadtest/corpus.py), unique texts, as the benchmark measures step (2).

The pick, per precision: among the settings that lose at most `--tolerance`
(5 %) of the best texts/s on `held-out` at the top concurrency, the one with the
most texts/s on `short` there. Why: production tweets are short, where a larger
batch pays; long texts pad a batch to their length, so they must not pay for it.

Writes sweep.md and sweep.json under loadtest/results/sweep/. About 18-20 minutes
with the defaults on 2 quiet cores (2 precisions x 4 caps x 3 windows, 8 s points).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from loadtest.bench import RESULTS, Config, Pools, _unique, run_points, serving, torch_threads
from loadtest.corpus import WORKLOADS, load_workloads
from loadtest.report import markdown_table, write_json
from predictor.modelcard import PRECISION_FILES

TOLERANCE = 0.05


@dataclass(frozen=True)
class Cell:
    """One point: a setting, a workload, a concurrency."""

    precision: str
    cap: int
    window: int
    workload: str
    concurrency: int
    texts_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int


Key = tuple[str, int, int, str, int]  # precision, cap, window, workload, concurrency


def _index(cells: list[Cell]) -> dict[Key, Cell]:
    return {(x.precision, x.cap, x.window, x.workload, x.concurrency): x for x in cells}


def pick(cells: list[Cell], precision: str, concurrency: int,
         tolerance: float = TOLERANCE) -> tuple[int, int] | None:  # fmt: skip
    """(cap, window) that wins on `short` among those within `tolerance` of the best on
    `held-out`, at `concurrency`; None if the precision was not measured."""
    index = _index(cells)

    def tps(setting: tuple[int, int], workload: str) -> float:
        cell = index.get((precision, *setting, workload, concurrency))
        return cell.texts_per_s if cell is not None else 0.0

    settings = list(dict.fromkeys((x.cap, x.window) for x in cells if x.precision == precision))
    if not settings:
        return None
    long_best = max(tps(s, "held-out") for s in settings)
    fair = [s for s in settings if tps(s, "held-out") >= (1 - tolerance) * long_best]
    return max(fair, key=lambda s: tps(s, "short"))


def sweep_table(cells: list[Cell], picks: dict[str, tuple[int, int] | None]) -> str:
    """A row per precision and setting; texts/s and p99 per workload and concurrency."""
    index = _index(cells)
    columns = list(dict.fromkeys((x.workload, x.concurrency) for x in cells))
    settings = list(dict.fromkeys((x.precision, x.cap, x.window) for x in cells))
    rows = []
    for precision, cap, window in settings:
        row = [precision, str(cap), str(window)]
        for workload, c in columns:
            cell = index.get((precision, cap, window, workload, c))
            row.append("-" if cell is None else f"{cell.texts_per_s:.1f} ({cell.p99_ms or 0:.0f})")
        row.append("pick" if picks.get(precision) == (cap, window) else "")
        rows.append(row)
    header = ["precision", "cap", "window",
              *(f"{w} c={c} texts/s (p99 ms)" for w, c in columns), ""]  # fmt: skip
    return markdown_table(header, rows)


async def run(cfg: Config, pools: Pools, caps: tuple[int, ...], windows: tuple[int, ...],
              precisions: list[str]) -> list[Cell]:  # fmt: skip
    cells = []
    for precision in precisions:
        for cap in caps:
            for window in windows:
                env = {"PREDICTOR_PRECISION": precision, "PREDICTOR_CACHE_ENABLED": "false",
                       "PREDICTOR_MAX_BATCH_SIZE": str(cap),
                       "PREDICTOR_BATCH_LENGTH_WINDOW": str(window)}  # fmt: skip
                name = f"sweep {precision} cap {cap} window {window}"
                print(name, flush=True)
                with serving(cfg, "predictor", name.replace(" ", "-"), env) as p:
                    for w, pool in pools.items():
                        points = await run_points(cfg, p, f"{w} {precision} cap={cap} w={window}",
                                                  _unique(pool), cfg.concurrency)  # fmt: skip
                        cells += [Cell(precision, cap, window, w, s.concurrency or 0,
                                       s.texts_per_s, s.p50_ms, s.p99_ms, sum(s.errors.values()))
                                  for s in points]  # fmt: skip
    return cells


def parse_args(argv: list[str] | None) -> tuple[Config, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="python -m loadtest.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--model-dir", type=Path, default=Path("models/sentiment"))
    p.add_argument("--out", type=Path, default=RESULTS / "sweep")
    p.add_argument("--caps", type=int, nargs="+", default=[4, 8, 16, 32])
    p.add_argument("--windows", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    p.add_argument("--precisions", nargs="+", choices=sorted(PRECISION_FILES),
                   default=["fp32", "bf16"])  # fmt: skip
    p.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    p.add_argument("--seconds", type=float, default=8.0, help="length of each point")
    p.add_argument("--warmup-seconds", type=float, default=2.0)
    p.add_argument("--tolerance", type=float, default=TOLERANCE,
                   help="share of the best held-out texts/s a pick may lose")  # fmt: skip
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 = the default")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--quick", action="store_true", help="2 s points, for a smoke run")
    a = p.parse_args(argv)
    if a.quick:
        a.seconds, a.warmup_seconds = 2.0, 1.0
    cfg = Config(model_dir=a.model_dir.resolve(), out=a.out, threads=a.threads,
                 seconds=a.seconds, warmup_seconds=a.warmup_seconds,
                 concurrency=tuple(a.concurrency), workloads=tuple(dict.fromkeys(a.workloads)),
                 server_env=dict(kv.split("=", 1) for kv in a.env))  # fmt: skip
    return cfg, a


def main(argv: list[str] | None = None) -> int:
    cfg, a = parse_args(argv)
    cfg.out.mkdir(parents=True, exist_ok=True)
    precisions = [p for p in a.precisions if (cfg.model_dir / PRECISION_FILES[p]).is_file()]
    for p in sorted(set(a.precisions) - set(precisions)):
        print(f"note: {p} skipped, {cfg.model_dir} has no {PRECISION_FILES[p]}", file=sys.stderr)
    started = time.monotonic()
    pools = load_workloads(cfg.model_dir, cfg.workloads)
    cells = asyncio.run(run(cfg, pools, tuple(a.caps), tuple(a.windows), precisions))
    top = max(cfg.concurrency)
    picks = ({p: pick(cells, p, top, a.tolerance) for p in precisions}
             if {"held-out", "short"} <= set(pools) else {})  # fmt: skip
    table = sweep_table(cells, picks)
    minutes = (time.monotonic() - started) / 60
    lines = [f"- {p}: cap {s[0]}, window {s[1]}" for p, s in picks.items() if s] or [
        "- none (the pick needs both workloads)"
    ]
    text = (f"# Batch cap and length window sweep\n\nCommand: `python -m loadtest.sweep "
            f"{' '.join(argv if argv is not None else sys.argv[1:])}`; model {cfg.model_dir}; "
            f"{torch_threads(cfg)} torch threads; {cfg.seconds:g} s points; {minutes:.1f} min\n\n"
            f"{table}\n\nPick at c={top} (the most `short` texts/s within {a.tolerance:.0%} of the "
            f"best `held-out`):\n\n" + "\n".join(lines) + "\n")  # fmt: skip
    (cfg.out / "sweep.md").write_text(text, encoding="utf-8")
    write_json(cfg.out / "sweep.json", {
        "config": {**asdict(cfg), "caps": a.caps, "windows": a.windows,
                   "tolerance": a.tolerance, "precisions": precisions},
        "cells": [asdict(c) for c in cells], "picks": picks,
    })  # fmt: skip
    print(f"\n{text}\nwritten: {cfg.out / 'sweep.md'}, {cfg.out / 'sweep.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
