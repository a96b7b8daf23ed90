"""The predictor's alerting rules, generated from code.

Writes charts/sentiment/files/prometheus-rules.yaml: a plain Prometheus rule
file (`groups:`), which is also the `spec` of a PrometheusRule, so the chart
can ship it either way. Annotations use Prometheus templates (`{{ $labels.x }}`),
so the chart must include the file verbatim (`.Files.Get`), never through `tpl`.

Each alert keeps its `signal` beside its `expr`: the value the condition
compares, which must return data on a live predictor even while all is well
(the live-Prometheus test checks it), whereas `expr` is empty until it fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from observability import CHART_DIR
from observability.promql import quantile, rate, ratio, selector

RULES_PATH = CHART_DIR / "files" / "prometheus-rules.yaml"
GROUP = "sentiment-predictor"
# The chart's InferenceService is `<release>-sentiment` (or `sentiment` when the release name
# contains it); its Deployments are `<isvc>-predictor...`.
PREDICTOR_DEPLOYMENTS = ".*sentiment.*-predictor.*"
BY_VERSION = ("namespace", "model", "version")

ERROR_RATIO_MAX = 0.05
ERROR_RATIO_MIN_RPS = 0.1  # below this, a single failure is not a trend
P99_MAX_SECONDS = 0.5  # a bucket boundary of predictor_request_duration_seconds
HIT_RATIO_DROP = 0.5  # alert when the hit ratio falls below half of an hour ago
HIT_RATIO_MIN_LOOKUPS = 0.5
FEEDBACK_ACCURACY_MIN = 0.7  # mlops.cycle --min-accuracy: below it the loop retrains
FEEDBACK_MIN_LABELS = 20  # labels in the window before the ratio means anything
FEEDBACK_WINDOW = "1h"  # feedback is sparse: a long window


@dataclass(frozen=True)
class Alert:
    name: str
    signal: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    runbook: str

    def rule(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook": self.runbook,
            },
        }


def _error_ratio() -> Alert:
    def requests(extra: tuple[str, ...] = ()) -> str:
        return rate("predictor_requests_total", extra, "5m", BY_VERSION)

    signal = ratio(requests(('code=~"5.."',)), requests())
    return Alert(
        name="PredictorHighErrorRatio",
        signal=signal,
        expr=f"{signal} > {ERROR_RATIO_MAX} and {requests()} > {ERROR_RATIO_MIN_RPS}",
        for_="5m",
        severity="critical",
        summary="{{ $labels.model }} {{ $labels.version }} answers "
        "{{ $value | humanizePercentage }} of requests with 5xx",
        description=f"More than {ERROR_RATIO_MAX:.0%} of inference requests to "
        "{{ $labels.model }} version {{ $labels.version }} in {{ $labels.namespace }} "
        "failed with 5xx over the last 5 minutes.",
        runbook="Split 5xx by code on the dashboard: 503 with predictor_shed_requests_total "
        "rising means overload (scale out or raise PREDICTOR_MAX_QUEUE_TEXTS); 503 without "
        "shedding means pods are not ready (kubectl describe pod, model load logs); 500/502 "
        "means a failure: read the error lines of the JSON log by request_id. If only the "
        "canary version fails, set canaryTrafficPercent to 0.",
    )


def _latency() -> Alert:
    signal = quantile(0.99, "predictor_request_duration_seconds", (), "5m", BY_VERSION)
    return Alert(
        name="PredictorHighLatencyP99",
        signal=signal,
        expr=f"{signal} > {P99_MAX_SECONDS}",
        for_="10m",
        severity="warning",
        summary="{{ $labels.model }} {{ $labels.version }} p99 latency is "
        "{{ $value | humanizeDuration }}",
        description="The 99th percentile of end-to-end request latency for {{ $labels.model }} "
        "version {{ $labels.version }} in {{ $labels.namespace }} has been above "
        f"{P99_MAX_SECONDS * 1000:.0f} ms for 10 minutes.",
        runbook="Compare queue wait with model inference time on the dashboard: long queue wait "
        "means too few replicas (check the autoscaler's desired vs available replicas and CPU per "
        "pod); long inference means bigger batches or a slower device (batch size panel, "
        "predictor_model_info device). A cache hit-ratio drop also sends more texts to the model.",
    )


def _hit_ratio(offset: str = "") -> str:
    lookups = "predictor_cache_lookups_total"
    return ratio(
        rate(lookups, ('result="hit"',), "10m", BY_VERSION, offset),
        rate(lookups, ('result=~"hit|miss"',), "10m", BY_VERSION, offset),
    )


def _cache_collapse() -> Alert:
    signal = _hit_ratio()
    traffic = rate("predictor_cache_lookups_total", (), "10m", BY_VERSION)
    return Alert(
        name="PredictorCacheHitRatioCollapse",
        signal=signal,
        expr=f"({signal}) < {HIT_RATIO_DROP} * ({_hit_ratio('1h')}) "
        f"and {traffic} > {HIT_RATIO_MIN_LOOKUPS}",
        for_="15m",
        severity="warning",
        summary="{{ $labels.model }} {{ $labels.version }} cache hit ratio fell to "
        "{{ $value | humanizePercentage }}",
        description="The prediction cache hit ratio of {{ $labels.model }} version "
        "{{ $labels.version }} in {{ $labels.namespace }} fell below half of what it was an "
        "hour earlier, with traffic still flowing.",
        runbook='Check predictor_cache_lookups_total{result="error"} and the Feature store up '
        "panel (Redis down or the circuit breaker open turns hits into errors); then Redis "
        "memory and evictions (redis-cli INFO memory, evicted_keys) and whether "
        "PREDICTOR_CACHE_TTL_SECONDS changed. A new model version starts with a cold cache: "
        "expected right after a rollout.",
    )


def _redis_down() -> Alert:
    signal = selector("predictor_featurestore_up", ('backend="redis"',))
    return Alert(
        name="PredictorRedisUnreachable",
        signal=signal,
        expr=f"{signal} == 0",
        for_="2m",
        severity="warning",
        summary="Pod {{ $labels.pod }} cannot reach its Redis feature store",
        description="predictor_featurestore_up has been 0 on {{ $labels.pod }} in "
        "{{ $labels.namespace }} for 2 minutes: every request skips the cache and goes to the "
        "model, so latency and CPU rise.",
        runbook="kubectl logs POD -c redis and kubectl describe pod POD (sidecar restarts, "
        "OOMKilled); check PREDICTOR_REDIS_URL points at 127.0.0.1:6379 and that the sidecar's "
        "memory limit is above its maxmemory. The predictor keeps serving without the cache; "
        "restart the pod only if Redis does not recover.",
    )


def _no_ready_replicas() -> Alert:
    matchers = (f'deployment=~"{PREDICTOR_DEPLOYMENTS}"',)
    by = "sum by (namespace, deployment)"
    available = f"{by} ({selector('kube_deployment_status_replicas_available', matchers)})"
    desired = f"{by} ({selector('kube_deployment_spec_replicas', matchers)})"
    return Alert(
        name="PredictorNoReadyReplicas",
        signal=available,
        expr=f"{available} == 0 and on (namespace, deployment) {desired} > 0",
        for_="3m",
        severity="critical",
        summary="{{ $labels.deployment }} has no available replicas",
        description="kube-state-metrics reports 0 available replicas of {{ $labels.deployment }} "
        "in {{ $labels.namespace }} while replicas are wanted: the model is not being served.",
        runbook="kubectl get pods -n NAMESPACE -l serving.kserve.io/inferenceservice=ISVC "
        "(ISVC: the deployment name before -predictor); describe the pods (image pull, "
        "scheduling, OOMKilled) and read the predictor's JSON log for the model load error; "
        "readiness needs the model loaded and warmed up.",
    )


def _model_not_ready() -> Alert:
    signal = "max by (namespace, model) (predictor_model_ready)"
    return Alert(
        name="PredictorModelNotReady",
        signal=signal,
        expr=f"{signal} == 0",
        for_="5m",
        severity="critical",
        summary="No predictor pod has {{ $labels.model }} loaded and ready",
        description="Every scraped predictor pod in {{ $labels.namespace }} reports "
        "predictor_model_ready 0 for {{ $labels.model }}: the pods run but cannot serve.",
        runbook="Read the predictor log for 'model failed to load' (model directory, card or "
        "TorchScript errors) or a drain that never finished; check PREDICTOR_MODEL_DIR and the "
        "storage initializer's logs.",
    )


def feedback_accuracy(by: tuple[str, ...] = BY_VERSION, matchers: tuple[str, ...] = ()) -> str:
    """Share of production feedback labels that agree with what the version served."""
    fb = "predictor_feedback_total"
    return ratio(
        rate(fb, (*matchers, 'verdict="agree"'), FEEDBACK_WINDOW, by),
        rate(fb, matchers, FEEDBACK_WINDOW, by),
    )


def _feedback_accuracy() -> Alert:
    signal = feedback_accuracy()
    labels = (
        f"sum by ({', '.join(BY_VERSION)}) (increase(predictor_feedback_total[{FEEDBACK_WINDOW}]))"
    )
    return Alert(
        name="PredictorFeedbackAccuracyLow",
        signal=signal,
        expr=f"{signal} < {FEEDBACK_ACCURACY_MIN} and {labels} >= {FEEDBACK_MIN_LABELS}",
        for_="15m",
        severity="warning",
        summary="Feedback agrees with {{ $labels.model }} {{ $labels.version }} only "
        "{{ $value | humanizePercentage }} of the time",
        description="Of the production feedback labels sent to POST /v1/models/"
        "{{ $labels.model }}/feedback in {{ $labels.namespace }} over the last hour, fewer than "
        f"{FEEDBACK_ACCURACY_MIN:.0%} matched what version {{{{ $labels.version }}}} had "
        "predicted: the live accuracy signal has dropped.",
        runbook="Read the newest feedback (GET /v1/models/MODEL/feedback?limit=50): one client "
        "sending wrong labels shows as one source, a shift as many. Check drift "
        "(python -m mlops.drift --prometheus ...). python -m mlops.cycle acts on this signal: "
        "it retrains with the feedback and starts a canary; if a canary is live and only it is "
        "low, the cycle rolls it back.",
    )


ALERTS: tuple[Alert, ...] = (
    _error_ratio(),
    _latency(),
    _cache_collapse(),
    _redis_down(),
    _no_ready_replicas(),
    _model_not_ready(),
    _feedback_accuracy(),
)


def build() -> dict[str, Any]:
    """The rule file: one group with every alert."""
    return {"groups": [{"name": GROUP, "rules": [a.rule() for a in ALERTS]}]}


def render() -> str:
    header = (
        "# Generated by observability/alerts.py (python -m observability); edit that, not this.\n"
    )
    return header + yaml.safe_dump(build(), sort_keys=False, width=10_000, allow_unicode=True)
