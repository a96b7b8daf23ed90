"""The alert rules, unit-tested by Prometheus's own evaluator (`promtool test rules`).

Every alert gets a case that fires (with its labels and rendered annotations
checked exactly) and cases that must stay quiet; a test fails when an alert
has no firing case here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from observability import alerts
from predictor.metrics import LATENCY_BUCKETS

NS = "serving"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: apt-get install prometheus (Debian ships promtool in it)",
)


@dataclass(frozen=True)
class Case:
    """Input series, then at `at`: the alert fires with `labels` (or not at all)."""

    alert: str
    what: str
    series: dict[str, str]
    at: str
    labels: dict[str, str] | None = None
    value_text: str = ""


def _s(name: str, **labels: str) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}}"


def _requests(code: str, version: str = "v2") -> str:
    return _s(
        "predictor_requests_total",
        namespace=NS,
        model="sentiment",
        version=version,
        protocol="v1",
        code=code,
    )


def _latency(le: str) -> str:
    return _s(
        "predictor_request_duration_seconds_bucket",
        namespace=NS,
        model="sentiment",
        version="v2",
        protocol="v1",
        le=le,
    )


def _lookups(result: str, version: str = "v2") -> str:
    return _s(
        "predictor_cache_lookups_total",
        namespace=NS,
        model="sentiment",
        version=version,
        result=result,
    )


def _traffic(ok: str, failed: str, code: str = "503") -> dict[str, str]:
    return {_requests("200"): ok, _requests(code): failed}


def _latencies(fast: str, slow: str) -> dict[str, str]:
    """`fast` requests a minute take under 250 ms, `slow` ones between 0.5 and 1 s."""
    return {
        _latency("0.25"): fast,
        _latency("0.5"): fast,
        _latency("1.0"): slow,
        _latency("+Inf"): slow,
    }


def _replicas(
    available: str, wanted: str, deployment: str = "sentiment-predictor"
) -> dict[str, str]:
    def series(name: str) -> str:
        return _s(name, namespace=NS, deployment=deployment)

    return {
        series("kube_deployment_status_replicas_available"): available,
        series("kube_deployment_spec_replicas"): wanted,
    }


def _redis_up(values: str) -> dict[str, str]:
    return {_s("predictor_featurestore_up", namespace=NS, pod="p-1", backend="redis"): values}


def _feedback(agree: str, disagree: str, label: str = "positive") -> dict[str, str]:
    def series(verdict: str) -> str:
        return _s("predictor_feedback_total", namespace=NS, model="sentiment", version="v2",
                  label=label, verdict=verdict)  # fmt: skip

    return {series("agree"): agree, series("disagree"): disagree}


MODEL_V2 = {"namespace": NS, "model": "sentiment", "version": "v2"}

CASES = [
    # --- error ratio: 6 of 66 requests a minute are 503 -> 9.091 % over 5 %.
    Case(
        "PredictorHighErrorRatio",
        "fires after 5m over 5 %",
        _traffic("0+60x30", "0+6x30"),
        "10m",
        {**MODEL_V2, "severity": "critical"},
        "9.091%",
    ),
    Case(
        "PredictorHighErrorRatio",
        "pending, not firing, before `for`",
        _traffic("0+60x30", "0+6x30"),
        "4m",
    ),
    Case(
        "PredictorHighErrorRatio",
        "quiet at 1.6 %",
        _traffic("0+60x30", "0+1x30"),
        "10m",
    ),
    Case(
        "PredictorHighErrorRatio",
        "quiet with 50 % of a trickle (2 requests a minute)",
        _traffic("0+1x30", "0+1x30"),
        "10m",
    ),
    Case(
        "PredictorHighErrorRatio",
        "4xx are the client's errors, not ours",
        _traffic("0+60x30", "0+60x30", code="400"),
        "10m",
    ),
    # --- p99 latency: every request in (0.5 s, 1 s] -> p99 interpolates to 995 ms.
    Case(
        "PredictorHighLatencyP99",
        "fires after 10m over 500 ms",
        _latencies(fast="0x30", slow="0+60x30"),
        "20m",
        {**MODEL_V2, "severity": "warning"},
        "995ms",
    ),
    Case(
        "PredictorHighLatencyP99",
        "quiet when all requests take under 250 ms",
        _latencies(fast="0+60x30", slow="0+60x30"),
        "20m",
    ),
    # --- cache hit ratio: 90 % for 70 minutes, then 10 %.
    Case(
        "PredictorCacheHitRatioCollapse",
        "fires when the ratio falls from 90 % to 10 %",
        {_lookups("hit"): "0+54x70 3780+6x40", _lookups("miss"): "0+6x70 420+54x40"},
        "100m",
        {**MODEL_V2, "severity": "warning"},
        "10%",
    ),
    Case(
        "PredictorCacheHitRatioCollapse",
        "quiet when the ratio was always 10 %",
        {_lookups("hit"): "0+6x110", _lookups("miss"): "0+54x110"},
        "100m",
    ),
    Case(
        "PredictorCacheHitRatioCollapse",
        "quiet for a new version with a cold cache and no history",
        {_lookups("hit", "v3"): "_x70 0+6x40", _lookups("miss", "v3"): "_x70 0+54x40"},
        "100m",
    ),
    # --- Redis: the gauge drops to 0 at minute 6.
    Case(
        "PredictorRedisUnreachable",
        "fires after 2m at 0",
        _redis_up("1x5 0x10"),
        "10m",
        {"namespace": NS, "pod": "p-1", "backend": "redis", "severity": "warning"},
    ),
    Case(
        "PredictorRedisUnreachable",
        "quiet once Redis is back",
        _redis_up("0x5 1x10"),
        "10m",
    ),
    # --- replicas from kube-state-metrics.
    Case(
        "PredictorNoReadyReplicas",
        "fires when none of the wanted replicas is available",
        _replicas("2x5 0x10", "2x15"),
        "10m",
        {"namespace": NS, "deployment": "sentiment-predictor", "severity": "critical"},
    ),
    Case(
        "PredictorNoReadyReplicas",
        "quiet when scaled to zero on purpose",
        _replicas("2x5 0x10", "2x5 0x10"),
        "10m",
    ),
    Case(
        "PredictorNoReadyReplicas",
        "quiet for another InferenceService's predictor",
        _replicas("2x5 0x10", "2x15", deployment="other-predictor"),
        "10m",
    ),
    # --- the predictor's own readiness gauge.
    Case(
        "PredictorModelNotReady",
        "fires when every pod reports not ready",
        {
            _s("predictor_model_ready", namespace=NS, model="sentiment", pod="p-1"): "0x15",
            _s("predictor_model_ready", namespace=NS, model="sentiment", pod="p-2"): "1x3 0x12",
        },
        "10m",
        {"namespace": NS, "model": "sentiment", "severity": "critical"},
    ),
    Case(
        "PredictorModelNotReady",
        "quiet while one pod is ready",
        {
            _s("predictor_model_ready", namespace=NS, model="sentiment", pod="p-1"): "0x15",
            _s("predictor_model_ready", namespace=NS, model="sentiment", pod="p-2"): "1x15",
        },
        "10m",
    ),
    # --- feedback: 1 label a minute agrees with the served prediction, 9 contradict it.
    Case(
        "PredictorFeedbackAccuracyLow",
        "fires when feedback contradicts the served model (10 % agree)",
        _feedback("0+1x90", "0+9x90"),
        "60m",
        {**MODEL_V2, "severity": "warning"},
        "10%",
    ),
    Case(
        "PredictorFeedbackAccuracyLow",
        "fires when accuracy drops from 90 % to 20 % (the hour window catches up)",
        _feedback("0+9x60 540+2x90", "0+1x60 60+8x90"),
        "140m",
        {**MODEL_V2, "severity": "warning"},
        "20%",
    ),
    Case(
        "PredictorFeedbackAccuracyLow",
        "quiet at 90 % agreement",
        _feedback("0+9x90", "0+1x90"),
        "60m",
    ),
    Case(
        "PredictorFeedbackAccuracyLow",
        "quiet on a trickle: 12 labels an hour are not evidence",
        _feedback("0x90", "0+0.2x90"),
        "60m",
    ),
]

_LABEL = re.compile(r"\{\{ \$labels\.(\w+) \}\}")
_VALUE = re.compile(r"\{\{ \$value \| \w+ \}\}")


def _expected_annotations(alert: alerts.Alert, case: Case) -> dict[str, str]:
    """The annotations as Prometheus should render them for this case's labels and value."""
    assert case.labels is not None
    labels = case.labels
    rule = alert.rule()["annotations"]
    return {
        key: _VALUE.sub(case.value_text, _LABEL.sub(lambda m: labels[m.group(1)], text))
        for key, text in rule.items()
    }


def _test_file(case: Case) -> dict[str, Any]:
    alert = next(a for a in alerts.ALERTS if a.name == case.alert)
    expected = []
    if case.labels is not None:
        expected = [
            {"exp_labels": case.labels, "exp_annotations": _expected_annotations(alert, case)}
        ]
    return {
        "rule_files": [str(alerts.RULES_PATH)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": f"{case.alert}: {case.what}",
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
                "alert_rule_test": [
                    {"eval_time": case.at, "alertname": case.alert, "exp_alerts": expected}
                ],
            }
        ],
    }


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


def test_rule_file_is_generated_from_code() -> None:
    assert alerts.RULES_PATH.read_text() == alerts.render(), (
        f"{alerts.RULES_PATH} drifted from observability/alerts.py: run python -m observability"
    )


def test_every_alert_has_severity_and_runbook() -> None:
    rules = yaml.safe_load(alerts.RULES_PATH.read_text())["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == [a.name for a in alerts.ALERTS]
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        for key in ("summary", "description", "runbook"):
            assert len(rule["annotations"][key]) > 20, f"{rule['alert']}: {key}"


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    for alert in alerts.ALERTS:
        mine = [c for c in CASES if c.alert == alert.name]
        assert any(c.labels is not None for c in mine), f"{alert.name}: no firing case"
        assert any(c.labels is None for c in mine), f"{alert.name}: no quiet case"


@needs_promtool
def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", str(alerts.RULES_PATH))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(alerts.ALERTS)} rules found" in result.stdout


@needs_promtool
@pytest.mark.parametrize("case", CASES, ids=[f"{c.alert}: {c.what}" for c in CASES])
def test_promtool_rule_case(case: Case, tmp_path: Path) -> None:
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(_test_file(case), sort_keys=False))
    result = _promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_latency_threshold_is_a_bucket_boundary() -> None:
    """histogram_quantile interpolates inside a bucket; at a boundary the alert is exact."""
    assert alerts.P99_MAX_SECONDS in LATENCY_BUCKETS
