"""Results for people and machines: the table, the JSON, the plot, the benchmark verdicts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from loadtest.outcome import HF_EAGER_STEP, HOT, Bench, CeilingPoint, ratios
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
    """Two workloads; bf16's ceiling and batch-1 best come from its frozen graph."""
    config = {"concurrency": [1, 16, 64], "hit_concurrency": [16], "precisions": ["fp32", "bf16"]}
    bench = Bench(config=config, environment={})
    ceiling = {
        "fp32": [CeilingPoint(1, 200.0, 220.0, 10), CeilingPoint(32, 200.0, 260.0, 10),
                 CeilingPoint(1, 190.0, 210.0, 10, "frozen")],
        "bf16": [CeilingPoint(1, 125.0, 140.0, 10), CeilingPoint(8, 400.0, 450.0, 10),
                 CeilingPoint(1, 250.0, 280.0, 10, "frozen"),
                 CeilingPoint(8, 500.0, 550.0, 10, "frozen")],
    }  # fmt: skip
    bench.ceiling = {"held-out": ceiling, "short": {"fp32": ceiling["fp32"]}}
    c1 = replace(point("p", 1, 180.0), p50_ms=5.4, p99_ms=8.0)  # best batch 1: 4 ms (bf16 frozen)
    bench.steps = {
        "held-out": {
            "predictor fp32": [replace(c1, p50_ms=6.0), point("p", 16, 150.0),
                               point("p", 64, 190.0)],
            "per-request fp32": [point("b", 64, 100.0)],
            "predictor bf16": [c1, point("p", 16, 300.0), point("p", 64, 440.0)],
            "per-request bf16": [point("b", 64, 200.0)],
        },
        "short": {"predictor fp32": [c1, point("p", 64, 190.0)]},
        HOT: {"redis-hit": [point("h", 16, 700.0, p99=7.5)], "noop": [point("n", 16, 1000.0)]},
    }  # fmt: skip
    return bench


def test_verdicts_per_workload_use_the_best_graph_and_the_best_batch1_latency() -> None:
    bench = bench_run()
    got = {r.name: r for r in ratios(bench)}
    fp32 = got["held-out fp32: predictor c=64 / in-process ceiling (best graph), texts/s"]
    assert fp32.value == 190.0 / 200.0 and fp32.met is True  # >= 0.9
    bf16 = got["held-out bf16: predictor c=64 / in-process ceiling (best graph), texts/s"]
    assert bf16.value == 440.0 / 500.0 and bf16.met is True  # frozen 500, not exported 400
    # the short workload has its own ceiling: fp32 only, so bf16 has no verdict there
    assert got["short fp32: predictor c=64 / in-process ceiling (best graph), texts/s"].met
    assert got["short bf16: predictor c=64 / in-process ceiling (best graph), texts/s"].met is None
    # c=1: best batch-1 latency of any artefact is bf16 frozen, 1000 / 250 = 4 ms
    assert bench.batch1_ms("held-out") == 4.0 and bench.batch1_ms("held-out", "fp32") == 5.0
    bf16_c1 = got["held-out bf16: predictor c=1 p50 - best in-process batch-1 latency, ms"]
    assert bf16_c1.value == pytest.approx(1.4) and bf16_c1.met is True
    fp32_c1 = got["held-out fp32: predictor c=1 p50 - best in-process batch-1 latency, ms"]
    assert fp32_c1.value == pytest.approx(2.0) and fp32_c1.met is False  # 6.0 > 4 + 1.5
    tail = got["held-out bf16: predictor c=1 p99 / p50"]
    assert tail.value == pytest.approx(8.0 / 5.4) and tail.met is True
    assert got["held-out fp32: predictor c=1 p99 / p50"].value == pytest.approx(8.0 / 6.0)
    assert got["held-out fp32: predictor / per-request baseline, c=64, texts/s"].value == 1.9
    assert got["Redis hit path / no-op floor, c=16, texts/s"].value == 0.7
    assert got["hit path p99 at c=16, ms"].met is False
    bench.steps[HOT].pop("redis-hit")  # feature store absent: no verdict rather than a fake one
    assert "n/a" in ratio_table(ratios(bench))


def test_ceiling_target_differs_by_precision() -> None:
    bench = bench_run()
    bench.steps["held-out"]["predictor fp32"][-1] = point("p", 64, 174.0)  # 0.87 of 200
    bench.steps["held-out"]["predictor bf16"][-1] = point("p", 64, 435.0)  # 0.87 of 500
    got = {r.name: r for r in ratios(bench)}
    assert (
        got["held-out fp32: predictor c=64 / in-process ceiling (best graph), texts/s"].met is False
    )
    assert (
        got["held-out bf16: predictor c=64 / in-process ceiling (best graph), texts/s"].met is True
    )


def test_bf16_over_fp32_is_reported_without_a_target() -> None:
    got = {r.name: r for r in ratios(bench_run())}
    speedup = got["held-out: bf16 / fp32 predictor c=64, texts/s"]
    assert speedup.value == 440.0 / 190.0 and speedup.met is None and speedup.target == ""
    frozen = got["held-out bf16: frozen / exported, best in-process batch, texts/s"]
    assert frozen.value == 500.0 / 400.0
    assert "info" in ratio_table([speedup])


def test_report_carries_both_workloads_both_graphs_and_the_agreement(tmp_path: Path) -> None:
    bench = bench_run()
    bench.hf_batch1_ms = {"held-out": 7.6, "short": 6.1}
    bench.agreement = {"file": "model-bf16.pt", "agreement": 0.995, "n_texts": 1000,
                       "min_agreement": 0.99, "max_prob_diff": 0.0123,
                       "parity_max_abs_diff": 0.0}  # fmt: skip
    report = write_report(bench, tmp_path, "python -m loadtest.bench").read_text()
    assert "99.50% of 1000 held-out texts" in report and "0.0123" in report
    assert "| bf16      | frozen   | 8     | 500.0" in report  # precision and graph columns
    assert "## Workload `held-out`" in report and "## Workload `short`" in report
    assert "bf16 500.0 texts/s (frozen, batch 8)" in report  # the ceiling the verdict used
    # batch-1 table: ours per artefact and graph beside the huggingfaceserver pattern
    assert "| ours, bf16 frozen" in report and "| 4.00" in report
    assert "huggingfaceserver pattern (transformers fp32) | 7.60" in report
    data = json.loads((tmp_path / "bench.json").read_text())
    assert set(data["ceiling"]) == {"held-out", "short"}
    assert set(data["ceiling"]["held-out"]) == {"fp32", "bf16"}
    assert {p.name for p in tmp_path.glob("*.png")} == {
        "latency_vs_throughput-held-out.png", "ceiling-held-out.png",
        "latency_vs_throughput-short.png", "ceiling-short.png",
    }  # fmt: skip
    assert not (tmp_path / "profiles.md").exists()  # no --profile, no profile file


def test_the_huggingfaceserver_ratios_take_the_best_precision_at_each_concurrency() -> None:
    bench = bench_run()
    names = {r.name for r in ratios(bench)}
    assert not any("huggingfaceserver pattern, c=" in n for n in names)  # not measured: none
    bench.steps["held-out"][HF_EAGER_STEP] = [
        point("hf", 1, 100.0),
        point("hf", 16, 70.0),
        point("hf", 64, 100.0),
    ]
    got = {r.name: r for r in ratios(bench)}
    one = got["held-out: predictor (best precision) / huggingfaceserver pattern, c=1"]
    assert one.value == 1.8 and one.met is True  # 180 / 100 >= 1.5
    sixteen = got["held-out: predictor (best precision) / huggingfaceserver pattern, c=16"]
    assert sixteen.value == 300.0 / 70.0 and sixteen.met is True  # bf16's 300, >= 4
    top = got["held-out: predictor (best precision) / huggingfaceserver pattern, c=64"]
    assert top.value == 4.4 and top.met is False  # bf16's 440, < 5
    assert "short: predictor (best precision) / huggingfaceserver pattern, c=1" not in got
