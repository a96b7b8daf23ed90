"""The written rules a candidate must pass, offline (held-out texts) and live (canary metrics).

Each rule is a Check that says what its failure means:
- ROLLBACK: the candidate is worse or unsafe (lower macro-F1, no parity record,
  other labels, more 5xx or slower p99 than stable under the same traffic);
- HOLD: not enough evidence, or a change big enough for a human to look at
  (models disagree a lot, too little canary traffic, no live metrics yet).
The verdict is the worst failure: any ROLLBACK wins, then any HOLD, else PROMOTE.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from mlops.heldout import predict, shared_heldout
from mlops.prom import Prometheus, selector
from predictor.modelcard import ServingCard
from training import data
from training.export import PARITY_TOLERANCE
from training.train import evaluate

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    PROMOTE = "promote"
    HOLD = "hold"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    on_fail: Verdict


def verdict(checks: list[Check]) -> Verdict:
    failed = {c.on_fail for c in checks if not c.passed}
    for v in (Verdict.ROLLBACK, Verdict.HOLD):
        if v in failed:
            return v
    return Verdict.PROMOTE


@dataclass(frozen=True)
class OfflineRules:
    max_f1_drop: float = 0.01  # candidate macro-F1 may be this much below stable's
    min_agreement: float = 0.85  # share of held-out texts both models label the same
    eval_size: int = 2000  # shared held-out texts scored by both
    seed: int = 0


def _parity(card: ServingCard) -> Check:
    diff = (card.model_extra or {}).get("parity_max_abs_diff")
    ok = isinstance(diff, int | float) and diff <= PARITY_TOLERANCE
    detail = (
        f"TorchScript vs eager max |diff| {diff:.2e} (limit {PARITY_TOLERANCE:g})"
        if isinstance(diff, int | float)
        else "the card records no parity check"
    )
    return Check("parity recorded", ok, detail, Verdict.ROLLBACK)


def offline_checks(stable_dir: Path, candidate_dir: Path, rules: OfflineRules) -> list[Check]:
    """Parity, labels, macro-F1 and agreement of both models on texts neither trained on."""
    stable, cand = ServingCard.read(stable_dir), ServingCard.read(candidate_dir)
    checks = [
        Check("new version", cand.version != stable.version,
              f"stable {stable.version}, candidate {cand.version}", Verdict.HOLD),
        Check("same labels", cand.labels == stable.labels,
              f"stable {stable.labels}, candidate {cand.labels}", Verdict.ROLLBACK),
        _parity(cand),
    ]  # fmt: skip
    if not checks[1].passed:
        return checks
    ev = shared_heldout([stable, cand], rules.eval_size, rules.seed)
    log.info("scoring both models on %d shared held-out texts", len(ev.texts))
    p_stable = predict(stable_dir, ev.texts).argmax(axis=1)
    p_cand = predict(candidate_dir, ev.texts).argmax(axis=1)
    f1_stable = evaluate(p_stable, ev.labels, len(data.LABELS)).macro_f1
    f1_cand = evaluate(p_cand, ev.labels, len(data.LABELS)).macro_f1
    agreement = float(np.mean(p_stable == p_cand))
    checks += [
        Check("macro-F1", f1_cand >= f1_stable - rules.max_f1_drop,
              f"candidate {f1_cand:.4f} vs stable {f1_stable:.4f} on {len(ev.texts)} shared "
              f"held-out texts (may drop at most {rules.max_f1_drop})", Verdict.ROLLBACK),
        Check("agreement", agreement >= rules.min_agreement,
              f"{agreement:.1%} same label (needs {rules.min_agreement:.0%}); below it a human "
              "reviews the change", Verdict.HOLD),
    ]  # fmt: skip
    return checks


@dataclass(frozen=True)
class LiveRules:
    window: str = "10m"
    min_requests: float = 100  # canary requests in the window before its numbers count
    max_error_increase: float = 0.005  # absolute 5xx ratio the canary may add over stable
    p99_tolerance: float = 0.2  # canary p99 may exceed stable's by this fraction...
    p99_slack_s: float = 0.005  # ...plus this much, so millisecond noise does not decide


@dataclass(frozen=True)
class VersionStats:
    requests: float
    error_ratio: float
    p99_s: float | None


def version_stats(prom: Prometheus, model: str, version: str, window: str) -> VersionStats:
    """Requests, 5xx share and p99 latency of one version over `window`, all pods summed."""
    sel = selector(model=model, version=version)
    errors_sel = sel[:-1] + ',code=~"5.."}'
    total = prom.scalar(f"sum(increase(predictor_requests_total{sel}[{window}]))") or 0.0
    errors = prom.scalar(f"sum(increase(predictor_requests_total{errors_sel}[{window}]))") or 0.0
    p99 = prom.scalar(
        "histogram_quantile(0.99, sum by (le) "
        f"(rate(predictor_request_duration_seconds_bucket{sel}[{window}])))"
    )
    return VersionStats(total, errors / total if total else 0.0, p99)


def live_checks(
    prom: Prometheus, model: str, stable_version: str, canary_version: str, rules: LiveRules
) -> list[Check]:
    """Canary against stable under the same traffic mix: 5xx ratio and p99 latency."""
    s = version_stats(prom, model, stable_version, rules.window)
    c = version_stats(prom, model, canary_version, rules.window)
    log.info("live %s: stable %s, canary %s", rules.window, s, c)
    checks = [
        Check("canary traffic", c.requests >= rules.min_requests,
              f"{c.requests:.0f} canary requests in {rules.window} "
              f"(needs {rules.min_requests:.0f})",
              Verdict.HOLD),
        Check("stable traffic", s.requests > 0,
              f"{s.requests:.0f} stable requests in {rules.window}", Verdict.HOLD),
    ]  # fmt: skip
    if not all(ch.passed for ch in checks):
        return checks
    checks.append(
        Check("error ratio", c.error_ratio <= s.error_ratio + rules.max_error_increase,
              f"5xx: canary {c.error_ratio:.2%} vs stable {s.error_ratio:.2%} "
              f"(may add {rules.max_error_increase:.2%})", Verdict.ROLLBACK)
    )  # fmt: skip
    if c.p99_s is None or s.p99_s is None:
        checks.append(Check("p99 latency", False, "no latency histogram yet", Verdict.HOLD))
    else:
        limit = s.p99_s * (1 + rules.p99_tolerance) + rules.p99_slack_s
        checks.append(
            Check("p99 latency", c.p99_s <= limit,
                  f"canary {c.p99_s * 1000:.1f} ms vs stable {s.p99_s * 1000:.1f} ms "
                  f"(limit {limit * 1000:.1f} ms)", Verdict.ROLLBACK)
        )  # fmt: skip
    return checks
