"""Results for people and machines: the table, the JSON, the plot, the benchmark verdicts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from loadtest.bench import Bench, CeilingPoint, ratio_table, ratios
from loadtest.report import plot_latency_vs_throughput, summary_table, write_json
from loadtest.stats import Summary

BASE = Summary(
    label="x", requests=100, ok=98, errors={"503": 2}, elapsed_s=1.0, requests_per_s=98.0,
    texts_per_s=98.0, p50_ms=4.0, p90_ms=6.0, p99_ms=9.0, max_ms=12.0, client_cpu_s=0.5,
    concurrency=16,
)  # fmt: skip


def point(label: str, c: int, tps: float, p99: float = 9.0) -> Summary:
    return replace(
        BASE, label=label, concurrency=c, texts_per_s=tps, requests_per_s=tps, p99_ms=p99
    )


def test_table_json_and_plot(tmp_path: Path) -> None:
    rows = [point("a c=1", 1, 50.0), point("a c=16", 16, 90.0)]
    table = summary_table(rows)
    assert table.count("\n") == 3  # header, rule, two rows
    assert "503: 2" in table and "n/a" in table  # errors by status; no cache figure
    data = json.loads(write_json(tmp_path / "r.json", [r.as_dict() for r in rows]).read_text())
    assert data[1]["texts_per_s"] == 90.0 and data[0]["errors"] == {"503": 2}
    png = plot_latency_vs_throughput({"a": rows}, tmp_path / "p.png", ceiling=120.0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_ratios_and_verdicts() -> None:
    bench = Bench(config={"concurrency": [1, 64], "hit_concurrency": [16]}, environment={})
    bench.ceiling = [CeilingPoint(8, 100.0, 120.0, 10), CeilingPoint(32, 200.0, 260.0, 10)]
    bench.steps = {
        "predictor": [point("p", 1, 20.0), point("p", 64, 190.0)],
        "per-request": [point("b", 64, 100.0)],
        "redis-hit": [point("h", 16, 700.0, p99=7.5)],
        "noop": [point("n", 16, 1000.0)],
    }
    got = {r.name.split(" ")[0]: r for r in ratios(bench)}
    assert got["(2)/(1)"].value == 190.0 / 200.0 and got["(2)/(1)"].met is True
    assert got["(2)/(3)"].value == 1.9 and got["(2)/(3)"].met is False
    assert got["(4)/(5)"].value == 0.7 and got["(4)/(5)"].met is False
    assert got["(4)"].value == 7.5 and got["(4)"].met is False
    del bench.steps["redis-hit"]  # feature store absent: no verdict rather than a fake one
    assert "n/a" in ratio_table(ratios(bench))
