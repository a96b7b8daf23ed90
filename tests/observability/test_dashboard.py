"""The checked-in Grafana dashboard: generated from code, complete, and well-formed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from observability import dashboard
from observability.__main__ import main

# What the dashboard must show (issue 5), as words its panel titles carry.
REQUIRED = {
    "request rate by status": "Request rate by protocol and status",
    "error rate by status": "Error rate by status",
    "p50/p90/p99 latency": "Request latency p50 / p90 / p99",
    "queue wait": "Queue wait p50 / p90 / p99",
    "batch size": "Batch size",
    "cache hit ratio": "Cache hit ratio",
    "replicas (kube-state-metrics)": "Replicas",
    "canary vs stable traffic": "Traffic by version",
    "canary vs stable latency": "p99 latency by version",
    "CPU per pod": "CPU per pod",
    "memory per pod": "Memory per pod",
    "GPU utilisation (DCGM)": "GPU utilisation",
    "explain traffic, apart from predict": "Explain request rate by status",
    "explain latency": "Explain latency p50 / p90 / p99",
    "explain's share of the batcher": "Model work from :explain",
}


@pytest.fixture(scope="module")
def board() -> dict:
    return json.loads(dashboard.DASHBOARD_PATH.read_text())


def test_checked_in_json_is_what_the_code_generates() -> None:
    assert dashboard.DASHBOARD_PATH.read_text() == dashboard.render(), (
        f"{dashboard.DASHBOARD_PATH} drifted from observability/dashboard.py: "
        "run python -m observability"
    )


def test_check_mode_passes_on_the_checked_in_files() -> None:
    assert main(["--check"]) == 0


def test_required_panels_are_present(board: dict) -> None:
    titles = {p["title"] for p in board["panels"]}
    missing = {need: title for need, title in REQUIRED.items() if title not in titles}
    assert not missing, missing


def test_variables_namespace_model_version(board: dict) -> None:
    names = [v["name"] for v in board["templating"]["list"]]
    assert names == ["datasource", "namespace", "model", "version"]


def test_variable_ids_are_unique(board: dict) -> None:
    """Grafana keys a dashboard's variable state by id: a shared id would merge variables."""
    ids = [v.get("id", v["name"]) for v in board["templating"]["list"]]
    assert len(ids) == len(set(ids)), ids


def test_every_query_filters_on_namespace_and_uses_the_datasource_variable(board: dict) -> None:
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert 'namespace=~"$namespace"' in target["expr"], (panel["title"], target["expr"])


def test_canary_panels_split_by_version(board: dict) -> None:
    by_title = {p["title"]: p for p in board["panels"]}
    for title in ("Traffic by version", "p99 latency by version", "5xx ratio by version"):
        for target in by_title[title]["targets"]:
            assert "by (version" in target["expr"] or ", version)" in target["expr"], title
            assert "$version" not in target["expr"], f"{title} must show every version"


def test_layout_ids_unique_and_no_overlap(board: dict) -> None:
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_explain_traffic_is_not_counted_as_predictions(board: dict) -> None:
    for panel in board["panels"]:
        exprs = " ".join(t["expr"] for t in panel.get("targets", []))
        if panel["type"] == "row":
            continue
        if "Explain" in panel["title"]:
            assert "predictor_explain_" in exprs and "predictor_requests_total" not in exprs
        elif "predictor_requests_total" in exprs:
            assert "explain" not in exprs, panel["title"]


# What a user of the dashboard sees, independent of the JSON's form: the rows, each panel's
# type, unit and bounds, every query and legend, and the variables. It was taken from the
# hand-built JSON the SDK replaced (git show b74a56a:charts/sentiment/dashboards/sentiment.json),
# so an SDK bump or a builder refactor that drops or changes any of it fails here; a panel
# changed on purpose is changed here too, after `python -m observability`:
#   python -c 'from tests.observability.test_dashboard import write_contract; write_contract()'
CONTRACT = Path(__file__).with_name("dashboard_contract.json")
# Variable settings, with the value Grafana assumes when a key is absent.
VARIABLE_DEFAULTS = {"multi": False, "includeAll": False, "allValue": None, "refresh": 0, "sort": 0}


def _contract(board: dict) -> dict[str, list[list]]:
    """Rows, panels, queries and variables as sorted lists of plain values."""
    row = ""
    panels, queries = [], []
    for panel in board["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        where = [row, panel["title"], panel["type"]]
        defaults = panel["fieldConfig"]["defaults"]
        look = [defaults.get(key) for key in ("unit", "min", "max")]
        look.append(defaults.get("custom", {}).get("stacking", {}).get("mode"))
        if panel["type"] == "timeseries":  # Grafana shows a legend unless told not to
            look.append(panel["options"]["legend"].get("showLegend", True))
        panels.append(where + look)
        for t in panel["targets"]:
            kind = [t.get("instant", False), t.get("format", "time_series")]
            queries.append([*where, t["expr"], t["legendFormat"], *kind])
    variables = [
        [v["name"], v["type"], v["query"], v.get("datasource", {}).get("uid")]
        + [v.get(key, default) for key, default in VARIABLE_DEFAULTS.items()]
        for v in board["templating"]["list"]
    ]
    return {"panels": sorted(panels), "queries": sorted(queries), "variables": variables}


def write_contract() -> None:
    """The checked-in dashboard's contract, one item per line so a change is a one-line diff."""
    contract = _contract(json.loads(dashboard.DASHBOARD_PATH.read_text()))
    parts = [
        f' "{part}": [\n' + ",\n".join(f"  {json.dumps(item)}" for item in items) + "\n ]"
        for part, items in contract.items()
    ]
    CONTRACT.write_text("{\n" + ",\n".join(parts) + "\n}\n")


def test_rows_panels_queries_and_variables_are_those_of_the_hand_built_dashboard(
    board: dict,
) -> None:
    expected = json.loads(CONTRACT.read_text())
    actual = _contract(board)
    for part in ("panels", "queries", "variables"):
        want = {json.dumps(item) for item in expected[part]}
        got = {json.dumps(item) for item in actual[part]}
        assert got == want, f"{part}: missing {sorted(want - got)}, unexpected {sorted(got - want)}"
    assert len(actual["queries"]) == len(expected["queries"])  # no query twice


def test_the_live_check_reads_every_query_and_variable_of_the_contract() -> None:
    """test_live_prometheus evaluates `queries()` and `variables()`: none may be left out."""
    contract = json.loads(CONTRACT.read_text())
    assert sorted(expr for _, expr in dashboard.queries()) == sorted(
        q[3] for q in contract["queries"]
    )
    assert [(v["name"], v["query"]) for v in dashboard.variables()] == [
        (v[0], v[2]) for v in contract["variables"]
    ]
