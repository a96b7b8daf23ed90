"""What one benchmark run measured and what it means: the figures and the verdicts.

Kept apart from running (bench.py) and from rendering (report.py), so a test can
build a run by hand and check the verdicts, and the report needs no servers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadtest.stats import Summary

# Targets: issue 6 (the serving stack against its ceiling and baselines) and issue 13
# (the same at each precision, bf16 against fp32), for a 2-core CPU.
TARGET_VS_CEILING = 0.9
TARGET_C1_VS_BATCH1 = 1.3
TARGET_VS_BASELINE = 2.0
TARGET_BF16_VS_FP32 = 2.2
TARGET_VS_HF_EAGER = 4.0  # issue 13: against KServe's huggingfaceserver pattern
HF_EAGER_STEP = "hf-eager fp32"  # loadtest/baselines/hf_eager.py; huggingfaceserver serves fp32
TARGET_HIT_P99_MS = 5.0
TARGET_VS_FLOOR = 0.8


@dataclass(frozen=True)
class CeilingPoint:
    batch_size: int
    texts_per_s: float  # tokenise + forward
    forward_texts_per_s: float  # forward pass alone
    batches: int


@dataclass
class Bench:
    """Everything one run measured; the JSON form is `asdict` of this.

    Steps that depend on the precision are named `<step> <precision>` (e.g.
    `predictor bf16`); the cache-hit path and the no-op floor are not.
    """

    config: dict[str, Any]
    environment: dict[str, Any]
    ceiling: dict[str, list[CeilingPoint]] = field(default_factory=dict)
    steps: dict[str, list[Summary]] = field(default_factory=dict)
    agreement: dict[str, Any] = field(default_factory=dict)  # bf16 vs fp32, from the card
    notes: list[str] = field(default_factory=list)

    def best_ceiling(self, precision: str) -> CeilingPoint | None:
        points = self.ceiling.get(precision) or []
        return max(points, key=lambda p: p.texts_per_s) if points else None

    def ceiling_at(self, precision: str, batch_size: int) -> CeilingPoint | None:
        points = self.ceiling.get(precision) or []
        return next((p for p in points if p.batch_size == batch_size), None)

    def point(self, step: str, concurrency: int) -> Summary | None:
        return next((s for s in self.steps.get(step, []) if s.concurrency == concurrency), None)


@dataclass(frozen=True)
class Ratio:
    name: str
    value: float | None
    target: str
    met: bool | None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _verdict(name: str, value: float | None, target: float, cmp: str) -> Ratio:
    met = None if value is None else value >= target if cmp == ">=" else value <= target
    return Ratio(name, value, f"{cmp} {target:g}", met)


def precision_ratios(bench: Bench, precision: str) -> list[Ratio]:
    """Predictor against its ceiling, its batch-1 latency and the baseline, one precision."""
    top = max(bench.config["concurrency"])
    p = precision

    def tps(step: str, c: int) -> float | None:
        s = bench.point(f"{step} {p}", c)
        return s.texts_per_s if s is not None else None

    best, one = bench.best_ceiling(p), bench.ceiling_at(p, 1)
    batch1_ms = 1000.0 / one.texts_per_s if one and one.texts_per_s else None
    c1 = bench.point(f"predictor {p}", 1)
    ours = tps("predictor", top)
    return [
        _verdict(f"{p}: predictor c={top} / in-process ceiling, texts/s",
                 _ratio(ours, best.texts_per_s if best else None), TARGET_VS_CEILING, ">="),
        _verdict(f"{p}: predictor c=1 p50 / in-process batch-1 latency",
                 _ratio(c1.p50_ms if c1 else None, batch1_ms), TARGET_C1_VS_BATCH1, "<="),
        _verdict(f"{p}: predictor / per-request baseline, c={top}, texts/s",
                 _ratio(ours, tps("per-request", top)), TARGET_VS_BASELINE, ">="),
    ]  # fmt: skip


def ratios(bench: Bench) -> list[Ratio]:
    top = max(bench.config["concurrency"])
    hit_c = bench.config["hit_concurrency"][0]
    precisions = list(bench.config.get("precisions", ["fp32"]))
    out = [r for p in precisions for r in precision_ratios(bench, p)]
    if {"fp32", "bf16"} <= set(precisions):
        fp32, bf16 = bench.point("predictor fp32", top), bench.point("predictor bf16", top)
        out.append(
            _verdict(f"bf16 / fp32 predictor c={top}, texts/s",
                     _ratio(bf16.texts_per_s if bf16 else None,
                            fp32.texts_per_s if fp32 else None), TARGET_BF16_VS_FP32, ">=")
        )  # fmt: skip
    hf = bench.point(HF_EAGER_STEP, top)
    if hf is not None:
        best = max((bench.point(f"predictor {p}", top) for p in precisions),
                   key=lambda s: s.texts_per_s if s else 0.0)  # fmt: skip
        out.append(
            _verdict(f"predictor (best precision) / huggingfaceserver pattern, c={top}, texts/s",
                     _ratio(best.texts_per_s if best else None, hf.texts_per_s),
                     TARGET_VS_HF_EAGER, ">=")
        )  # fmt: skip
    hit, noop = bench.point("redis-hit", hit_c), bench.point("noop", hit_c)
    out += [
        _verdict(f"Redis hit path / no-op floor, c={hit_c}, texts/s",
                 _ratio(hit.texts_per_s if hit else None, noop.texts_per_s if noop else None),
                 TARGET_VS_FLOOR, ">="),
        _verdict(f"hit path p99 at c={hit_c}, ms", hit.p99_ms if hit else None,
                 TARGET_HIT_P99_MS, "<="),
    ]  # fmt: skip
    return out
