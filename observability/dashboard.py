"""The Grafana dashboard for the predictor, generated from code.

The chart ships the JSON this writes (charts/sentiment/dashboards/sentiment.json);
a test fails when the checked-in file drifts from `build()`, so a panel is
changed here and the file regenerated with `python -m observability`.

Every query filters on the dashboard's variables (namespace, model, version)
and reads a series the predictor exports, except the panels that read
kube-state-metrics (replicas), cAdvisor (container CPU and memory) and DCGM
(GPU), which show data only where those exporters run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from observability import CHART_DIR
from observability.alerts import FEEDBACK_ACCURACY_MIN, FEEDBACK_WINDOW, feedback_accuracy
from observability.promql import mean, on_predictor_pods, quantile, rate, ratio, selector

DASHBOARD_PATH = CHART_DIR / "dashboards" / "sentiment.json"
UID = "sentiment-predictor"
RATE = "$__rate_interval"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# Matchers on the dashboard's variables.
NS = 'namespace=~"$namespace"'
MODEL = 'model=~"$model"'
VERSION = 'version=~"$version"'
MODEL_SEL = (NS, MODEL, VERSION)
ALL_VERSIONS = (NS, MODEL)  # the canary-vs-stable panels compare versions, so show them all
# KServe's own stage histograms label the model as `model_name`, without a version.
KSERVE_SEL = (NS, 'model_name=~"$model"')
# A KServe InferenceService's Deployments and HPA are named `<isvc>-predictor...`
# (RawDeployment: `<isvc>-predictor`; Serverless: `<isvc>-predictor-<rev>-deployment`).
# The chart names the isvc after the release, not the model, so match any in the namespace.
DEPLOYMENT = 'deployment=~".+-predictor.*"'
HPA = 'horizontalpodautoscaler=~".+-predictor.*"'
CONTAINERS = (NS, 'container!=""', 'container!="POD"')

QUANTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 8
    height: int = 8
    stack: bool = False
    max: float | None = None


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def _quantiles(
    histogram: str, matchers: tuple[str, ...], by: tuple[str, ...] = ()
) -> tuple[Target, ...]:
    suffix = "".join(f" {{{{{label}}}}}" for label in by)
    return tuple(
        Target(quantile(q, histogram, matchers, RATE, by), f"p{round(q * 100)}{suffix}")
        for q in QUANTILES
    )


def _requests(
    extra: tuple[str, ...] = (), by: tuple[str, ...] = (), sel: tuple[str, ...] = MODEL_SEL
) -> str:
    return rate("predictor_requests_total", (*sel, *extra), RATE, by)


def _error_ratio(codes: str, by: tuple[str, ...] = (), sel: tuple[str, ...] = MODEL_SEL) -> str:
    return ratio(_requests((f'code=~"{codes}"',), by, sel), _requests((), by, sel))


def _cache_hit_ratio(by: tuple[str, ...]) -> str:
    lookups = "predictor_cache_lookups_total"
    return ratio(
        rate(lookups, (*MODEL_SEL, 'result="hit"'), RATE, by),
        rate(lookups, (*MODEL_SEL, 'result=~"hit|miss"'), RATE, by),
    )


def _pods(expr: str) -> str:
    return on_predictor_pods(expr, MODEL_SEL)


TRAFFIC = Row(
    "Traffic and errors",
    (
        Panel(
            "Request rate by protocol and status",
            "Inference requests answered per second, by protocol (v1, v2, grpc) and status code.",
            (Target(_requests(by=("protocol", "code")), "{{protocol}} {{code}}"),),
            unit="reqps",
            stack=True,
        ),
        Panel(
            "Error rate by status",
            "Requests per second answered with a non-2xx status. 4xx: the client's fault "
            "(bad input, unknown model, too large); 5xx: ours (shed under overload, not "
            "ready, failures).",
            (Target(_requests(('code!~"2.."',), by=("code",)), "{{code}}"),),
            unit="reqps",
            stack=True,
        ),
        Panel(
            "Error ratio",
            "Share of requests answered with 5xx (what the error-ratio alert watches) and 4xx.",
            (
                Target(_error_ratio("5.."), "5xx"),
                Target(_error_ratio("4.."), "4xx"),
            ),
            unit="percentunit",
        ),
        Panel(
            "In-flight requests",
            "Inference requests being handled right now, per pod.",
            (
                Target(
                    f"sum by (pod) ({selector('predictor_inflight_requests', MODEL_SEL)})",
                    "{{pod}}",
                ),
            ),
        ),
        Panel(
            "Shed requests and truncated texts",
            "Requests refused with 503 because the batch queue was full, and texts cut to the "
            "length limit.",
            (
                Target(rate("predictor_shed_requests_total", MODEL_SEL, RATE), "shed requests/s"),
                Target(
                    rate("predictor_truncated_texts_total", MODEL_SEL, RATE), "truncated texts/s"
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Loaded models",
            "One row per pod: the model version, device and precision it serves.",
            (
                Target(
                    f"max by (pod, model, version, device, precision) "
                    f"({selector('predictor_model_info', MODEL_SEL)})",
                    "",
                    instant=True,
                ),
            ),
            kind="table",
        ),
    ),
)

LATENCY = Row(
    "Latency",
    (
        Panel(
            "Request latency p50 / p90 / p99",
            "End-to-end latency inside the server, from the first byte read to the response.",
            _quantiles("predictor_request_duration_seconds", MODEL_SEL),
            unit="s",
        ),
        Panel(
            "Queue wait p50 / p90 / p99",
            "Time a text waits in the batcher before its forward pass starts.",
            _quantiles("predictor_queue_wait_seconds", MODEL_SEL),
            unit="s",
        ),
        Panel(
            "Batch size",
            "Texts per forward pass: the median, the 99th percentile and the mean.",
            (
                Target(quantile(0.5, "predictor_batch_size", MODEL_SEL, RATE), "p50"),
                Target(quantile(0.99, "predictor_batch_size", MODEL_SEL, RATE), "p99"),
                Target(mean("predictor_batch_size", MODEL_SEL, RATE), "mean"),
            ),
        ),
        Panel(
            "Model inference time p50 / p90 / p99",
            "Tokenise + forward time of one batch on the engine thread.",
            _quantiles("predictor_inference_duration_seconds", MODEL_SEL),
            unit="s",
        ),
        Panel(
            "KServe stage latency p99",
            "KServe's own histograms: preprocess (decode), predict (cache + batch + model), "
            "postprocess (encode).",
            tuple(
                Target(quantile(0.99, f"request_{stage}_seconds", KSERVE_SEL, RATE), stage)
                for stage in ("preprocess", "predict", "postprocess")
            ),
            unit="s",
        ),
    ),
)

FEATURE_STORE = Row(
    "Feature store",
    (
        Panel(
            "Cache hit ratio",
            "Share of cache lookups (hits + misses) answered from the feature store, per version.",
            (Target(_cache_hit_ratio(("version",)), "{{version}}"),),
            unit="percentunit",
            max=1.0,
        ),
        Panel(
            "Cache lookups by result",
            "Texts looked up per second: hit, miss, or error (backend failed, or skipped while "
            "the circuit breaker is open).",
            (
                Target(
                    rate("predictor_cache_lookups_total", MODEL_SEL, RATE, ("result",)),
                    "{{result}}",
                ),
            ),
            unit="ops",
            stack=True,
        ),
        Panel(
            "Cache lookup latency p50 / p90 / p99",
            "One batched lookup: a single round trip for all texts of a request.",
            _quantiles("predictor_cache_lookup_duration_seconds", (NS, MODEL)),
            unit="s",
        ),
        Panel(
            "Feature store up",
            "1 when the pod's backend answered its last call or PING. 0 means Redis is "
            "unreachable: every request goes to the model.",
            (
                Target(
                    _pods(
                        f"max by (namespace, pod, backend) "
                        f"({selector('predictor_featurestore_up', (NS,))})"
                    ),
                    "{{pod}} {{backend}}",
                ),
            ),
            max=1.0,
        ),
        Panel(
            "Cache write errors",
            "Write-behind entries lost per second (backend failed or write queue full).",
            (
                Target(
                    rate("predictor_cache_write_errors_total", (NS, MODEL), RATE), "lost writes/s"
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Tweet source calls by outcome",
            "Tweets resolved from URLs, by source and outcome (ok, not_found, rate_limited, "
            "unreachable, cached, ...).",
            (
                Target(
                    _pods(
                        rate(
                            "predictor_tweet_source_requests_total",
                            (NS,),
                            RATE,
                            ("namespace", "pod", "source", "outcome"),
                        )
                    ),
                    "{{pod}} {{source}} {{outcome}}",
                ),
            ),
            unit="ops",
        ),
    ),
)

CANARY = Row(
    "Canary vs stable (by model version)",
    (
        Panel(
            "Traffic by version",
            "Requests per second served by each model version: the canary split as it happens.",
            (Target(_requests(by=("version",), sel=ALL_VERSIONS), "{{version}}"),),
            unit="reqps",
        ),
        Panel(
            "p99 latency by version",
            "End-to-end p99 per model version, side by side.",
            (
                Target(
                    quantile(
                        0.99, "predictor_request_duration_seconds", ALL_VERSIONS, RATE, ("version",)
                    ),
                    "{{version}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "5xx ratio by version",
            "Share of 5xx answers per model version.",
            (Target(_error_ratio("5..", ("version",), ALL_VERSIONS), "{{version}}"),),
            unit="percentunit",
        ),
    ),
)

FEEDBACK = Row(
    "Production feedback (live accuracy)",
    (
        Panel(
            "Live accuracy by version",
            "Share of feedback labels (POST /v1/models/NAME/feedback) that agree with what each "
            f"version served, over {FEEDBACK_WINDOW}. mlops.cycle retrains below "
            f"{FEEDBACK_ACCURACY_MIN:.0%} and rolls back a canary that falls behind stable.",
            (Target(feedback_accuracy(("version",), ALL_VERSIONS), "{{version}}"),),
            unit="percentunit",
            max=1.0,
        ),
        Panel(
            "Feedback by label and verdict",
            "Feedback labels per second, by the label given and whether the served prediction "
            "agreed.",
            (
                Target(
                    rate("predictor_feedback_total", MODEL_SEL, RATE, ("label", "verdict")),
                    "{{label}} {{verdict}}",
                ),
            ),
            unit="ops",
            stack=True,
        ),
        Panel(
            "Feedback records dropped",
            "Feedback not stored (write queue full, feature store down or breaker open).",
            (Target(rate("predictor_feedback_dropped_total", MODEL_SEL, RATE), "dropped"),),
            unit="ops",
        ),
    ),
)

CAPACITY = Row(
    "Replicas and resources",
    (
        Panel(
            "Replicas",
            "Predictor pods from kube-state-metrics: desired by the Deployment, available, and "
            "desired by the autoscaler.",
            (
                Target(
                    "sum by (deployment) "
                    f"({selector('kube_deployment_spec_replicas', (NS, DEPLOYMENT))})",
                    "desired {{deployment}}",
                ),
                Target(
                    "sum by (deployment) "
                    f"({selector('kube_deployment_status_replicas_available', (NS, DEPLOYMENT))})",
                    "available {{deployment}}",
                ),
                Target(
                    "sum by (horizontalpodautoscaler) ("
                    + selector("kube_horizontalpodautoscaler_status_desired_replicas", (NS, HPA))
                    + ")",
                    "autoscaler wants {{horizontalpodautoscaler}}",
                ),
            ),
        ),
        Panel(
            "CPU per pod",
            "CPU cores used: the predictor process (its own collector) and every container of "
            "the pod, Redis sidecar included (cAdvisor).",
            (
                Target(
                    _pods(rate("process_cpu_seconds_total", (NS,), RATE, ("namespace", "pod"))),
                    "{{pod}} predictor process",
                ),
                Target(
                    _pods(
                        rate(
                            "container_cpu_usage_seconds_total",
                            CONTAINERS,
                            RATE,
                            ("namespace", "pod", "container"),
                        )
                    ),
                    "{{pod}} {{container}}",
                ),
            ),
            unit="cores",
        ),
        Panel(
            "Memory per pod",
            "Resident memory of the predictor process, and the working set of every container "
            "(what the OOM killer compares to the limit).",
            (
                Target(
                    _pods(
                        "max by (namespace, pod) "
                        f"({selector('process_resident_memory_bytes', (NS,))})"
                    ),
                    "{{pod}} predictor RSS",
                ),
                Target(
                    _pods(
                        "max by (namespace, pod, container) "
                        f"({selector('container_memory_working_set_bytes', CONTAINERS)})"
                    ),
                    "{{pod}} {{container}} working set",
                ),
            ),
            unit="bytes",
        ),
        Panel(
            "GPU utilisation",
            "From NVIDIA's DCGM exporter, where it runs (no data on CPU-only nodes).",
            (
                Target(
                    _pods(f"max by (namespace, pod) ({selector('DCGM_FI_DEV_GPU_UTIL', (NS,))})"),
                    "{{pod}} GPU busy %",
                ),
            ),
            unit="percent",
            max=100.0,
        ),
        Panel(
            "GPU memory used",
            "Framebuffer memory in use, from DCGM (MiB).",
            (
                Target(
                    _pods(f"max by (namespace, pod) ({selector('DCGM_FI_DEV_FB_USED', (NS,))})"),
                    "{{pod}}",
                ),
            ),
            unit="decmbytes",
        ),
    ),
)

# `:explain` has its own series (predictor/metrics.py), so the panels above show predictions
# only; its occluded texts share the batcher, so their share of the model's work is shown.
EXPLAIN = Row(
    "Explain (:explain)",
    (
        Panel(
            "Explain request rate by status",
            "`:explain` requests answered per second, by status code (400: over the word or "
            "text cap). Not part of the request panels above.",
            (
                Target(
                    rate("predictor_explain_requests_total", MODEL_SEL, RATE, ("code",)),
                    "{{code}}",
                ),
            ),
            unit="reqps",
            stack=True,
        ),
        Panel(
            "Explain latency p50 / p90 / p99",
            "End-to-end `:explain` latency: a text of n words costs n + 1 texts through the "
            "batcher.",
            _quantiles("predictor_explain_request_duration_seconds", MODEL_SEL),
            unit="s",
        ),
        Panel(
            "Model work from :explain",
            "Texts per second through the batcher: all of them, and those :explain added "
            "(each explained text and its occlusions, one per word).",
            (
                Target(rate("predictor_batch_size_sum", MODEL_SEL, RATE), "all texts/s"),
                Target(
                    f"{rate('predictor_explained_words_sum', MODEL_SEL, RATE)} + "
                    f"{rate('predictor_explained_words_count', MODEL_SEL, RATE)}",
                    "explain texts/s",
                ),
            ),
        ),
    ),
)

ROWS = (TRAFFIC, LATENCY, EXPLAIN, FEATURE_STORE, CANARY, FEEDBACK, CAPACITY)


def _variable(name: str, label: str, query: str, multi: bool) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": query,
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": multi,
        "sort": 1,
        "current": {"selected": True, "text": "All", "value": "$__all"},
    }


def variables() -> list[dict[str, Any]]:
    """Data source, then namespace -> model -> version, each narrowing the next."""
    info = "predictor_model_info"
    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
        },
        _variable("namespace", "Namespace", f"label_values({info}, namespace)", multi=False),
        _variable("model", "Model", f"label_values({selector(info, (NS,))}, model)", multi=False),
        _variable(
            "version",
            "Version",
            f"label_values({selector(info, (NS, MODEL))}, version)",
            multi=True,
        ),
    ]


def _panel_json(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    targets = [
        {
            "datasource": DATASOURCE,
            "refId": chr(ord("A") + n),
            "expr": t.expr,
            "legendFormat": t.legend,
            "range": not t.instant,
            "instant": t.instant,
            **({"format": "table"} if t.instant else {}),
        }
        for n, t in enumerate(panel.targets)
    ]
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.max is not None:
        defaults["max"] = panel.max
    if panel.kind == "timeseries":
        defaults["min"] = 0
        defaults["custom"] = {
            "drawStyle": "line",
            "fillOpacity": 20 if panel.stack else 5,
            "stacking": {"mode": "normal" if panel.stack else "none"},
            "showPoints": "never",
        }
    body: dict[str, Any] = {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "targets": targets,
    }
    if panel.kind == "timeseries":
        body["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom"},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    else:
        body["transformations"] = [
            {"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}
        ]
    return body


def panels() -> list[dict[str, Any]]:
    """Rows of panels laid out left to right, wrapping at Grafana's 24 columns."""
    out: list[dict[str, Any]] = []
    pid = 1
    y = 0
    for row in ROWS:
        out.append(
            {
                "id": pid,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid += 1
        y += 1
        x = 0
        row_height = 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            out.append(_panel_json(panel, pid, x, y))
            pid += 1
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    return out


def build() -> dict[str, Any]:
    """The whole dashboard as Grafana's JSON model."""
    return {
        "uid": UID,
        "title": "Tweet sentiment predictor",
        "description": "KServe sentiment predictor: traffic, errors, latency, batching, "
        "feature store, canary vs stable, production feedback, replicas and resources. "
        "Generated by observability/dashboard.py; edit that, not this file.",
        "tags": ["kserve", "sentiment", "predictor"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "utc",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": variables()},
        "panels": panels(),
    }


def render() -> str:
    """The file's exact text: stable key order and indentation, so diffs stay readable."""
    return json.dumps(build(), indent=2) + "\n"


def queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target, for checks against a real Prometheus."""
    return [
        (f"{panel.title} [{chr(ord('A') + n)}]", target.expr)
        for row in ROWS
        for panel in row.panels
        for n, target in enumerate(panel.targets)
    ]
