"""The Grafana dashboard for the predictor, built with Grafana's own SDK.

`grafana-foundation-sdk`'s builders are generated from the schema Grafana
itself uses, so panel, option and query shapes, enums and datasource references
(a typed `DataSourceRef`) are checked by mypy, and panel sizes by the SDK's range
checks, instead of assumed; the SDK also lays the panels out on the grid. Units
come from its constants (`units.*`), though the builders take any string.
The chart ships the JSON this writes (charts/sentiment/dashboards/sentiment.json);
a test fails when the checked-in file drifts from `render()`, so a panel is
changed here and the file regenerated with `python -m observability`. The SDK
is a dev tool: the file is committed, the serving image never imports this.

Every query filters on the dashboard's variables (namespace, model, version)
and reads a series the predictor exports, except the panels that read
kube-state-metrics (replicas), cAdvisor (container CPU and memory) and DCGM
(GPU), which show data only where those exporters run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dashboard_b
from grafana_foundation_sdk.builders import prometheus, table, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common, units
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prometheus_model

from observability import CHART_DIR
from observability.alerts import FEEDBACK_ACCURACY_MIN, FEEDBACK_WINDOW, feedback_accuracy
from observability.promql import mean, on_predictor_pods, quantile, rate, ratio, selector

DASHBOARD_PATH = CHART_DIR / "dashboards" / "sentiment.json"
UID = "sentiment-predictor"
RATE = "$__rate_interval"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
# Three panels side by side on Grafana's 24-column grid.
WIDTH = 8
HEIGHT = 8
# Grafana has no "cores" unit; an unknown unit id is shown as a suffix, which is what we want.
CORES = "cores"

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

# The panel kinds this dashboard uses: typed builders, each with the SDK's own options.
PanelBuilder = timeseries.Panel | table.Panel


def _target(expr: str, legend: str) -> prometheus.Dataquery:
    """A range query on the templated Prometheus; its refId is set by the panel."""
    return prometheus.Dataquery().datasource(DATASOURCE).expr(expr).legend_format(legend).range()


def _with_targets(panel: PanelBuilder, targets: Sequence[prometheus.Dataquery]) -> None:
    for n, target in enumerate(targets):
        panel.with_target(target.ref_id(chr(ord("A") + n)))


def _timeseries(
    title: str,
    description: str,
    targets: Sequence[prometheus.Dataquery],
    unit: str = units.Short,
    stack: bool = False,
    max_val: float | None = None,
) -> timeseries.Panel:
    """A line graph from zero; stacked series get a stronger fill so the areas read."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(WIDTH)
        .height(HEIGHT)
        .unit(unit)
        .min(0)
        .draw_style(common.GraphDrawStyle.LINE)
        .fill_opacity(20 if stack else 5)
        .stacking(
            common_b.StackingConfig().mode(
                common.StackingMode.NORMAL if stack else common.StackingMode.NONE
            )
        )
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)  # the SDK's default is False: no legend at all
        )
        .tooltip(
            common_b.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if max_val is not None:
        panel.max(max_val)
    _with_targets(panel, targets)
    return panel


def _info_table(title: str, description: str, expr: str) -> table.Panel:
    """One row per series of an instant query, its labels as columns."""
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(WIDTH)
        .height(HEIGHT)
        .unit(units.Short)
        .show_header(True)
        # The organize transformation's options have no SDK type (`options: object`).
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize", options={"excludeByName": {"Time": True, "Value": True}}
            )
        )
    )
    query = _target(expr, "").instant().format(prometheus_model.PromQueryFormat.TABLE)
    _with_targets(panel, (query,))
    return panel


def _quantiles(
    histogram: str, matchers: tuple[str, ...], by: tuple[str, ...] = ()
) -> tuple[prometheus.Dataquery, ...]:
    suffix = "".join(f" {{{{{label}}}}}" for label in by)
    return tuple(
        _target(quantile(q, histogram, matchers, RATE, by), f"p{round(q * 100)}{suffix}")
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


def _traffic() -> tuple[PanelBuilder, ...]:
    return (
        _timeseries(
            "Request rate by protocol and status",
            "Inference requests answered per second, by protocol (v1, v2, grpc) and status code.",
            (_target(_requests(by=("protocol", "code")), "{{protocol}} {{code}}"),),
            unit=units.RequestsPerSecond,
            stack=True,
        ),
        _timeseries(
            "Error rate by status",
            "Requests per second answered with a non-2xx status. 4xx: the client's fault "
            "(bad input, unknown model, too large); 5xx: ours (shed under overload, not "
            "ready, failures).",
            (_target(_requests(('code!~"2.."',), by=("code",)), "{{code}}"),),
            unit=units.RequestsPerSecond,
            stack=True,
        ),
        _timeseries(
            "Error ratio",
            "Share of requests answered with 5xx (what the error-ratio alert watches) and 4xx.",
            (
                _target(_error_ratio("5.."), "5xx"),
                _target(_error_ratio("4.."), "4xx"),
            ),
            unit=units.PercentUnit,
        ),
        _timeseries(
            "In-flight requests",
            "Inference requests being handled right now, per pod.",
            (
                _target(
                    f"sum by (pod) ({selector('predictor_inflight_requests', MODEL_SEL)})",
                    "{{pod}}",
                ),
            ),
        ),
        _timeseries(
            "Shed requests and truncated texts",
            "Requests refused with 503 because the batch queue was full, and texts cut to the "
            "length limit.",
            (
                _target(rate("predictor_shed_requests_total", MODEL_SEL, RATE), "shed requests/s"),
                _target(
                    rate("predictor_truncated_texts_total", MODEL_SEL, RATE), "truncated texts/s"
                ),
            ),
            unit=units.OpsPerSecond,
        ),
        _info_table(
            "Loaded models",
            "One row per pod: the model version, device and precision it serves.",
            f"max by (pod, model, version, device, precision) "
            f"({selector('predictor_model_info', MODEL_SEL)})",
        ),
    )


def _latency() -> tuple[PanelBuilder, ...]:
    return (
        _timeseries(
            "Request latency p50 / p90 / p99",
            "End-to-end latency inside the server, from the first byte read to the response.",
            _quantiles("predictor_request_duration_seconds", MODEL_SEL),
            unit=units.Seconds,
        ),
        _timeseries(
            "Queue wait p50 / p90 / p99",
            "Time a text waits in the batcher before its forward pass starts.",
            _quantiles("predictor_queue_wait_seconds", MODEL_SEL),
            unit=units.Seconds,
        ),
        _timeseries(
            "Batch size",
            "Texts per forward pass: the median, the 99th percentile and the mean.",
            (
                _target(quantile(0.5, "predictor_batch_size", MODEL_SEL, RATE), "p50"),
                _target(quantile(0.99, "predictor_batch_size", MODEL_SEL, RATE), "p99"),
                _target(mean("predictor_batch_size", MODEL_SEL, RATE), "mean"),
            ),
        ),
        _timeseries(
            "Model inference time p50 / p90 / p99",
            "Tokenise + forward time of one batch on the engine thread.",
            _quantiles("predictor_inference_duration_seconds", MODEL_SEL),
            unit=units.Seconds,
        ),
        _timeseries(
            "KServe stage latency p99",
            "KServe's own histograms: preprocess (decode), predict (cache + batch + model), "
            "postprocess (encode).",
            tuple(
                _target(quantile(0.99, f"request_{stage}_seconds", KSERVE_SEL, RATE), stage)
                for stage in ("preprocess", "predict", "postprocess")
            ),
            unit=units.Seconds,
        ),
    )


def _feature_store() -> tuple[PanelBuilder, ...]:
    return (
        _timeseries(
            "Cache hit ratio",
            "Share of cache lookups (hits + misses) answered from the feature store, per version.",
            (_target(_cache_hit_ratio(("version",)), "{{version}}"),),
            unit=units.PercentUnit,
            max_val=1.0,
        ),
        _timeseries(
            "Cache lookups by result",
            "Texts looked up per second: hit, miss, or error (backend failed, or skipped while "
            "the circuit breaker is open).",
            (
                _target(
                    rate("predictor_cache_lookups_total", MODEL_SEL, RATE, ("result",)),
                    "{{result}}",
                ),
            ),
            unit=units.OpsPerSecond,
            stack=True,
        ),
        _timeseries(
            "Cache lookup latency p50 / p90 / p99",
            "One batched lookup: a single round trip for all texts of a request.",
            _quantiles("predictor_cache_lookup_duration_seconds", (NS, MODEL)),
            unit=units.Seconds,
        ),
        _timeseries(
            "Feature store up",
            "1 when the pod's backend answered its last call or PING. 0 means Redis is "
            "unreachable: every request goes to the model.",
            (
                _target(
                    _pods(
                        f"max by (namespace, pod, backend) "
                        f"({selector('predictor_featurestore_up', (NS,))})"
                    ),
                    "{{pod}} {{backend}}",
                ),
            ),
            max_val=1.0,
        ),
        _timeseries(
            "Cache write errors",
            "Write-behind entries lost per second (backend failed or write queue full).",
            (
                _target(
                    rate("predictor_cache_write_errors_total", (NS, MODEL), RATE), "lost writes/s"
                ),
            ),
            unit=units.OpsPerSecond,
        ),
        _timeseries(
            "Tweet source calls by outcome",
            "Tweets resolved from URLs, by source and outcome (ok, not_found, rate_limited, "
            "unreachable, cached, ...).",
            (
                _target(
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
            unit=units.OpsPerSecond,
        ),
    )


def _canary() -> tuple[PanelBuilder, ...]:
    return (
        _timeseries(
            "Traffic by version",
            "Requests per second served by each model version: the canary split as it happens.",
            (_target(_requests(by=("version",), sel=ALL_VERSIONS), "{{version}}"),),
            unit=units.RequestsPerSecond,
        ),
        _timeseries(
            "p99 latency by version",
            "End-to-end p99 per model version, side by side.",
            (
                _target(
                    quantile(
                        0.99, "predictor_request_duration_seconds", ALL_VERSIONS, RATE, ("version",)
                    ),
                    "{{version}}",
                ),
            ),
            unit=units.Seconds,
        ),
        _timeseries(
            "5xx ratio by version",
            "Share of 5xx answers per model version.",
            (_target(_error_ratio("5..", ("version",), ALL_VERSIONS), "{{version}}"),),
            unit=units.PercentUnit,
        ),
    )


def _feedback() -> tuple[PanelBuilder, ...]:
    return (
        _timeseries(
            "Live accuracy by version",
            "Share of feedback labels (POST /v1/models/NAME/feedback) that agree with what each "
            f"version served, over {FEEDBACK_WINDOW}. mlops.cycle retrains below "
            f"{FEEDBACK_ACCURACY_MIN:.0%} and rolls back a canary that falls behind stable.",
            (_target(feedback_accuracy(("version",), ALL_VERSIONS), "{{version}}"),),
            unit=units.PercentUnit,
            max_val=1.0,
        ),
        _timeseries(
            "Feedback by label and verdict",
            "Feedback labels per second, by the label given and whether the served prediction "
            "agreed.",
            (
                _target(
                    rate("predictor_feedback_total", MODEL_SEL, RATE, ("label", "verdict")),
                    "{{label}} {{verdict}}",
                ),
            ),
            unit=units.OpsPerSecond,
            stack=True,
        ),
        _timeseries(
            "Feedback records dropped",
            "Feedback not stored (write queue full, feature store down or breaker open).",
            (_target(rate("predictor_feedback_dropped_total", MODEL_SEL, RATE), "dropped"),),
            unit=units.OpsPerSecond,
        ),
    )


def _capacity() -> tuple[PanelBuilder, ...]:
    return (
        _timeseries(
            "Replicas",
            "Predictor pods from kube-state-metrics: desired by the Deployment, available, and "
            "desired by the autoscaler.",
            (
                _target(
                    "sum by (deployment) "
                    f"({selector('kube_deployment_spec_replicas', (NS, DEPLOYMENT))})",
                    "desired {{deployment}}",
                ),
                _target(
                    "sum by (deployment) "
                    f"({selector('kube_deployment_status_replicas_available', (NS, DEPLOYMENT))})",
                    "available {{deployment}}",
                ),
                _target(
                    "sum by (horizontalpodautoscaler) ("
                    + selector("kube_horizontalpodautoscaler_status_desired_replicas", (NS, HPA))
                    + ")",
                    "autoscaler wants {{horizontalpodautoscaler}}",
                ),
            ),
        ),
        _timeseries(
            "CPU per pod",
            "CPU cores used: the predictor process (its own collector) and every container of "
            "the pod, Redis sidecar included (cAdvisor).",
            (
                _target(
                    _pods(rate("process_cpu_seconds_total", (NS,), RATE, ("namespace", "pod"))),
                    "{{pod}} predictor process",
                ),
                _target(
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
            unit=CORES,
        ),
        _timeseries(
            "Memory per pod",
            "Resident memory of the predictor process, and the working set of every container "
            "(what the OOM killer compares to the limit).",
            (
                _target(
                    _pods(
                        "max by (namespace, pod) "
                        f"({selector('process_resident_memory_bytes', (NS,))})"
                    ),
                    "{{pod}} predictor RSS",
                ),
                _target(
                    _pods(
                        "max by (namespace, pod, container) "
                        f"({selector('container_memory_working_set_bytes', CONTAINERS)})"
                    ),
                    "{{pod}} {{container}} working set",
                ),
            ),
            unit=units.BytesIEC,
        ),
        _timeseries(
            "GPU utilisation",
            "From NVIDIA's DCGM exporter, where it runs (no data on CPU-only nodes).",
            (
                _target(
                    _pods(f"max by (namespace, pod) ({selector('DCGM_FI_DEV_GPU_UTIL', (NS,))})"),
                    "{{pod}} GPU busy %",
                ),
            ),
            unit=units.Percent,
            max_val=100.0,
        ),
        _timeseries(
            "GPU memory used",
            "Framebuffer memory in use, from DCGM (MiB).",
            (
                _target(
                    _pods(f"max by (namespace, pod) ({selector('DCGM_FI_DEV_FB_USED', (NS,))})"),
                    "{{pod}}",
                ),
            ),
            unit=units.Megabytes,
        ),
    )


# `:explain` has its own series (predictor/metrics.py), so the panels above show predictions
# only; its occluded texts share the batcher, so their share of the model's work is shown.
def _explain() -> tuple[PanelBuilder, ...]:
    return (
        _timeseries(
            "Explain request rate by status",
            "`:explain` requests answered per second, by status code (400: over the word or "
            "text cap). Not part of the request panels above.",
            (
                _target(
                    rate("predictor_explain_requests_total", MODEL_SEL, RATE, ("code",)),
                    "{{code}}",
                ),
            ),
            unit=units.RequestsPerSecond,
            stack=True,
        ),
        _timeseries(
            "Explain latency p50 / p90 / p99",
            "End-to-end `:explain` latency: a text of n words costs n + 1 texts through the "
            "batcher.",
            _quantiles("predictor_explain_request_duration_seconds", MODEL_SEL),
            unit=units.Seconds,
        ),
        _timeseries(
            "Model work from :explain",
            "Texts per second through the batcher: all of them, and those :explain added "
            "(each explained text and its occlusions, one per word).",
            (
                _target(rate("predictor_batch_size_sum", MODEL_SEL, RATE), "all texts/s"),
                _target(
                    f"{rate('predictor_explained_words_sum', MODEL_SEL, RATE)} + "
                    f"{rate('predictor_explained_words_count', MODEL_SEL, RATE)}",
                    "explain texts/s",
                ),
            ),
        ),
    )


ROWS: tuple[tuple[str, Callable[[], tuple[PanelBuilder, ...]]], ...] = (
    ("Traffic and errors", _traffic),
    ("Latency", _latency),
    ("Explain (:explain)", _explain),
    ("Feature store", _feature_store),
    ("Canary vs stable (by model version)", _canary),
    ("Production feedback (live accuracy)", _feedback),
    ("Replicas and resources", _capacity),
)


def _query_variable(
    name: str, label: str, query: str, multi: bool = False
) -> dashboard_b.QueryVariable:
    """A label's values on the templated Prometheus, "All" (any value) selected."""
    return (
        dashboard_b.QueryVariable(name)
        .id(name)  # see _variables
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .include_all(True)
        .all_value(".*")
        .multi(multi)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .current(model.VariableOption(selected=True, text="All", value="$__all"))
    )


def _variables() -> list[Builder[model.VariableModel]]:
    """Data source, then namespace -> model -> version, each narrowing the next.

    Each variable's id is its name, as Grafana assigns when the id is absent: the SDK's
    default is one all-zero UUID for every variable, and Grafana's (pre-Scenes) variable
    state is keyed by id, so the four would overwrite one another.
    """
    info = "predictor_model_info"
    return [
        dashboard_b.DatasourceVariable("datasource")
        .id("datasource")
        .label("Data source")
        .type("prometheus"),
        _query_variable("namespace", "Namespace", f"label_values({info}, namespace)"),
        _query_variable("model", "Model", f"label_values({selector(info, (NS,))}, model)"),
        _query_variable(
            "version",
            "Version",
            f"label_values({selector(info, (NS, MODEL))}, version)",
            multi=True,
        ),
    ]


def build() -> model.Dashboard:
    """The whole dashboard; the SDK places each row and wraps its panels at 24 columns."""
    board = (
        dashboard_b.Dashboard("Tweet sentiment predictor")
        .uid(UID)
        .description(
            "KServe sentiment predictor: traffic, errors, latency, batching, feature store, "
            "canary vs stable, production feedback, replicas and resources. "
            "Generated by observability/dashboard.py; edit that, not this file."
        )
        .tags(["kserve", "sentiment", "predictor"])
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .version(1)
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("utc")
        .variables(_variables())
        .annotations([])  # Grafana adds its built-in annotation query to an empty list
    )
    pid = 1
    for title, panels in ROWS:
        board.with_row(dashboard_b.Row(title).id(pid))
        for panel in panels():
            pid += 1
            board.with_panel(panel.id(pid))
        pid += 1
    return board.build()


def render() -> str:
    """The file's exact text: stable key order and indentation, so diffs stay readable."""
    return json.dumps(build(), cls=JSONEncoder, indent=2) + "\n"


def _board() -> dict[str, Any]:
    """The JSON as shipped, so checks read what Grafana will load, not the builders."""
    return json.loads(render())


def variables() -> list[dict[str, Any]]:
    """The template variables as the shipped JSON has them."""
    return list(_board()["templating"]["list"])


def queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target of the shipped JSON, for a real Prometheus."""
    return [
        (f"{panel['title']} [{target['refId']}]", target["expr"])
        for panel in _board()["panels"]
        for target in panel.get("targets", [])
    ]
