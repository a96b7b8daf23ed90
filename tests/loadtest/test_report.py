"""Results for people and machines: the table, the JSON, the plot, the benchmark verdicts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from loadtest.outcome import HF_EAGER_STEP, Bench, CeilingPoint, ratios
from loadtest.report import (
    plot_latency_vs_throughput,
    ratio_table,
    summary_table,
    write_json,
    write_report,
)
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
    png = plot_latency_vs_throughput(
        {"a": rows}, tmp_path / "p.png", ceilings={"fp32": 120.0, "bf16": 250.0}
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def bench_run() -> Bench:
    config = {"concurrency": [1, 64], "hit_concurrency": [16], "precisions": ["fp32", "bf16"]}
    bench = Bench(config=config, environment={})
    bench.ceiling = {
        "fp32": [CeilingPoint(1, 50.0, 55.0, 10), CeilingPoint(32, 200.0, 260.0, 10)],
        "bf16": [CeilingPoint(1, 80.0, 90.0, 10), CeilingPoint(8, 500.0, 550.0, 10)],
    }
    bench.steps = {
        "predictor fp32": [replace(point("p", 1, 20.0), p50_ms=25.0), point("p", 64, 190.0)],
        "per-request fp32": [point("b", 64, 100.0)],
        "predictor bf16": [replace(point("p", 1, 40.0), p50_ms=15.0), point("p", 64, 440.0)],
        "per-request bf16": [point("b", 64, 200.0)],
        "redis-hit": [point("h", 16, 700.0, p99=7.5)],
        "noop": [point("n", 16, 1000.0)],
    }
    return bench


def test_bench_ratios_and_verdicts_at_each_precision() -> None:
    bench = bench_run()
    got = {r.name: r for r in ratios(bench)}
    fp32_ceiling = got["fp32: predictor c=64 / in-process ceiling, texts/s"]
    assert fp32_ceiling.value == 190.0 / 200.0 and fp32_ceiling.met is True
    bf16_ceiling = got["bf16: predictor c=64 / in-process ceiling, texts/s"]
    assert bf16_ceiling.value == 440.0 / 500.0 and bf16_ceiling.met is False
    # batch-1 latency in-process: 1000 / 50 = 20 ms (fp32), 1000 / 80 = 12.5 ms (bf16)
    assert got["fp32: predictor c=1 p50 / in-process batch-1 latency"].value == 25.0 / 20.0
    assert got["bf16: predictor c=1 p50 / in-process batch-1 latency"].met is True
    assert got["fp32: predictor / per-request baseline, c=64, texts/s"].value == 1.9
    assert got["bf16: predictor / per-request baseline, c=64, texts/s"].met is True
    speedup = got["bf16 / fp32 predictor c=64, texts/s"]
    assert speedup.value == 440.0 / 190.0 and speedup.met is True
    assert got["Redis hit path / no-op floor, c=16, texts/s"].value == 0.7
    assert got["hit path p99 at c=16, ms"].met is False
    del bench.steps["redis-hit"]  # feature store absent: no verdict rather than a fake one
    assert "n/a" in ratio_table(ratios(bench))


def test_report_carries_both_precisions_and_the_agreement(tmp_path: Path) -> None:
    bench = bench_run()
    bench.agreement = {"file": "model-bf16.pt", "agreement": 0.995, "n_texts": 1000,
                       "min_agreement": 0.99, "max_prob_diff": 0.0123,
                       "parity_max_abs_diff": 0.0}  # fmt: skip
    report = write_report(bench, tmp_path, "python -m loadtest.bench").read_text()
    assert "99.50% of 1000 held-out texts" in report and "0.0123" in report
    assert "| bf16      | 8     | 500.0" in report  # the ceiling table has a precision column
    data = json.loads((tmp_path / "bench.json").read_text())
    assert set(data["ceiling"]) == {"fp32", "bf16"}
    assert {p.name for p in tmp_path.glob("*.png")} == {"latency_vs_throughput.png", "ceiling.png"}


def test_the_huggingfaceserver_ratio_takes_the_best_precision_and_only_when_measured() -> None:
    bench = bench_run()
    name = "predictor (best precision) / huggingfaceserver pattern, c=64, texts/s"
    assert name not in {r.name for r in ratios(bench)}  # step (3b) skipped: no verdict
    bench.steps[HF_EAGER_STEP] = [point("hf", 64, 100.0)]
    got = {r.name: r for r in ratios(bench)}[name]
    assert got.value == 440.0 / 100.0 and got.met is True  # bf16's 440, not fp32's 190
    bench.steps[HF_EAGER_STEP] = [point("hf", 64, 120.0)]
    assert {r.name: r for r in ratios(bench)}[name].met is False  # 3.67 < 4
