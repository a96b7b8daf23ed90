"""Every dashboard query and alert expression, evaluated by a real Prometheus.

A real predictor (Redis feature store, fake X API as tweet source) is scraped
every second by Debian's `prometheus`, which also loads the generated rule
file. Traffic exercises cache hits and misses, 4xx, shed 503s, truncation and
tweet lookups; then Redis is stopped, so lookups error and the feature store
reports down. Every panel target, variable query and alert signal must parse
and return a series, except those that read exporters this test cannot run
(EXPECTED_EMPTY), which must still parse.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from observability import alerts, dashboard
from tests.fixtures import tokens
from tests.fixtures.fake_x_api import FakeXApi
from tests.fixtures.predictor_proc import PredictorProcess
from tests.fixtures.prometheus_server import PrometheusServer, QueryError, StartPrometheus
from tests.fixtures.redis_server import RedisServer

NAMESPACE = "obs-test"
POD = "sentiment-predictor-0"
MAX_QUEUE = 16
RATE_WINDOW = "1m"

# Metric families this test cannot produce, and why; queries reading them must only parse.
EXPECTED_EMPTY = {
    "kube_": "kube-state-metrics does not run here",
    "container_": "cAdvisor (the kubelet) does not run here",
    "DCGM_": "no GPU and no DCGM exporter here",
}
_EXPECTED_EMPTY_RE = re.compile(r"\b(" + "|".join(EXPECTED_EMPTY) + r")\w+")


@dataclass
class Stack:
    predictor: PredictorProcess
    prometheus: PrometheusServer
    redis: RedisServer
    version: str


def _v1(server: PredictorProcess, instances: list[object], model: str = "sentiment") -> int:
    resp = httpx.post(
        f"{server.url}/v1/models/{model}:predict", json={"instances": instances}, timeout=30
    )
    return resp.status_code


def _traffic(server: PredictorProcess, api: FakeXApi, round_: int) -> list[int]:
    """One round of every kind of request; the statuses, for the record."""
    statuses = [
        _v1(server, ["the same text every round", "and its twin"]),  # hits after round 0
        _v1(server, [f"a new text for round {round_}"]),  # always a miss
        _v1(server, ["x" * 5000]),  # truncated
        _v1(server, [{"tweet_url": api.add(f"{100 + round_}", "great day", "someone")}]),
        _v1(server, [{"tweet_url": "https://x.com/nobody/status/999999"}]),  # not found
        _v1(server, []),  # 400
        _v1(server, ["hello"], model="no-such-model"),  # 404
        _v1(server, [f"shed {n}" for n in range(MAX_QUEUE + 1)]),  # 503: over the queue cap
    ]
    resp = httpx.post(
        f"{server.url}/v2/models/sentiment/infer",
        json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["v2"]}]},
        timeout=30,
    )
    fb = httpx.post(
        f"{server.url}/v1/models/sentiment/feedback",
        json={"text": f"feedback {round_}", "label": ("negative", "positive")[round_ % 2]},
        headers=tokens.WRITE,
        timeout=30,
    )
    why = httpx.post(
        f"{server.url}/v1/models/sentiment:explain",
        json={"instances": [f"explain this text for round {round_}"]},
        timeout=30,
    )
    return [*statuses, resp.status_code, fb.status_code, why.status_code]


@pytest.fixture(scope="module")
def stack(
    tiny_model_dir: Path,
    module_redis: RedisServer,
    module_x_api: FakeXApi,
    start_prometheus: StartPrometheus,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    env = {
        "PREDICTOR_REDIS_URL": module_redis.url(),
        **module_x_api.env(),
        "PREDICTOR_MAX_QUEUE_TEXTS": str(MAX_QUEUE),
        "PREDICTOR_HEALTH_INTERVAL_S": "0.5",
        **tokens.env(tmp_path_factory.mktemp("obs-tokens")),
    }
    log = tmp_path_factory.mktemp("obs-predictor") / "predictor.log"
    server = PredictorProcess(tiny_model_dir, log, env=env).start().wait_ready()
    prom = start_prometheus(
        [f"127.0.0.1:{server.http_port}"],
        labels={"namespace": NAMESPACE, "pod": POD},
        rule_files=[alerts.RULES_PATH],
    )
    try:
        # Counters need two scrapes that see them change before rate() has a value.
        for round_ in range(3):
            statuses = _traffic(server, module_x_api, round_)
            assert {200, 400, 404, 503} <= set(statuses), statuses
            prom.wait_scrapes(1)
        module_redis.stop()  # lookups now fail: result="error", feature store down
        for round_ in range(3, 5):
            _traffic(server, module_x_api, round_)
            prom.wait_scrapes(1)
        assert prom.wait_for('predictor_featurestore_up{backend="redis"} == 0'), prom.logs()
        assert prom.wait_for(
            f"rate(predictor_cache_lookups_total{{result='error'}}[{RATE_WINDOW}]) > 0"
        )
        info = prom.wait_for("predictor_model_info")
        assert info, f"predictor not scraped:\n{prom.logs()}"
        yield Stack(server, prom, module_redis, info[0]["metric"]["version"])
    finally:
        server.stop()


def _substitute(expr: str, version: str) -> str:
    """Grafana's variables, as Grafana would fill them for this test's pod."""
    for var, value in (
        ("$__rate_interval", RATE_WINDOW),
        ("${model}", "sentiment"),
        ("$model", "sentiment"),
        ("$namespace", NAMESPACE),
        # A regex inside a PromQL string: its backslashes doubled, as Grafana does.
        ("$version", re.escape(version).replace("\\", "\\\\")),
    ):
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def _variable_query(definition: str) -> str:
    """`label_values(sel, label)` as the PromQL that lists the label's values."""
    m = re.fullmatch(r"label_values\((.+), (\w+)\)", definition)
    assert m, definition
    return f"count by ({m.group(2)}) ({m.group(1)})"


def _checks(stack: Stack) -> list[tuple[str, str, str | None]]:
    """(what, PromQL, reason it may be empty or None) for every query that must be checked."""
    checks: list[tuple[str, str, str | None]] = []
    for var in dashboard.variables():
        if var["type"] == "query":
            checks.append((f"variable {var['name']}", _variable_query(var["query"]), None))
    for where, expr in dashboard.queries():
        checks.append((f"panel {where}", expr, None))
    for alert in alerts.ALERTS:
        checks.append((f"alert {alert.name} signal", alert.signal, None))
    out = []
    for what, expr, _ in checks:
        expr = _substitute(expr, stack.version)
        family = _EXPECTED_EMPTY_RE.search(expr)
        out.append((what, expr, EXPECTED_EMPTY[family.group(1)] if family else None))
    return out


def test_every_query_parses_and_returns_series(stack: Stack) -> None:
    lines: list[str] = []
    failures: list[str] = []
    for what, expr, empty_reason in _checks(stack):
        try:
            result = stack.prometheus.query(expr)
        except QueryError as exc:
            failures.append(f"{what}: does not parse: {exc}\n  {expr}")
            continue
        values = sorted({f"{float(r['value'][1]):.4g}" for r in result})[:3]
        if empty_reason:
            state = f"expected-empty ({empty_reason}), got {len(result)}"
        elif not result:
            state = "EMPTY"
            failures.append(f"{what}: no series\n  {expr}")
        elif "nan" in values:  # 0/0: the series exist but saw no traffic in the window
            state = f"NaN in {values}"
            failures.append(f"{what}: NaN\n  {expr}")
        else:
            state = f"ok, {len(result)} series, values {values}"
        lines.append(f"{what:<70} {state}")
    print("\nlive-query check against Prometheus:\n" + "\n".join(lines))
    assert not failures, "\n".join(failures)


def test_every_alert_expression_parses(stack: Stack) -> None:
    for alert in alerts.ALERTS:
        stack.prometheus.query(alert.expr)  # raises QueryError on bad PromQL


def test_rules_load_and_evaluate_cleanly(stack: Stack) -> None:
    rules = stack.prometheus.rules()
    assert {r["name"] for r in rules} == {a.name for a in alerts.ALERTS}
    for rule in rules:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"


def test_alerts_the_traffic_provokes_go_pending(stack: Stack) -> None:
    """Redis stopped and 1 request in 8 shed: Prometheus holds those two alerts (pending until
    their `for`), and no other."""
    provoked = {"PredictorRedisUnreachable", "PredictorHighErrorRatio"}
    deadline = time.monotonic() + 15
    while True:
        active = {
            r["name"]: [(a["state"], a["labels"]) for a in r.get("alerts", [])]
            for r in stack.prometheus.rules()
        }
        if all(active[name] for name in provoked) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {name for name, alerts_ in active.items() if alerts_} == provoked, active
    ((state, labels),) = active["PredictorRedisUnreachable"]
    assert (state, labels["pod"], labels["backend"]) == ("pending", POD, "redis")
    ((state, labels),) = active["PredictorHighErrorRatio"]
    assert (state, labels["model"], labels["version"]) == ("pending", "sentiment", stack.version)


def test_process_collector_and_kserve_histograms_are_scraped(stack: Stack) -> None:
    for family in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "request_predict_seconds_count",
        "request_preprocess_seconds_count",
    ):
        assert stack.prometheus.query(f'{family}{{pod="{POD}"}}'), family
