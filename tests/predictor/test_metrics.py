"""The metrics contract: names, units, labels and the version every per-model series carries."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from predictor import metrics
from tests.fixtures.predictor_proc import PredictorProcess

# Families the dashboard and alerts read (issue 5's list), all on the predictor's /metrics.
CONTRACT = {
    "predictor_requests": "counter",
    "predictor_request_duration_seconds": "histogram",
    "predictor_inflight_requests": "gauge",
    "predictor_queue_wait_seconds": "histogram",
    "predictor_batch_size": "histogram",
    "predictor_inference_duration_seconds": "histogram",
    "predictor_truncated_texts": "counter",
    "predictor_shed_requests": "counter",
    "predictor_model_info": "gauge",
    "predictor_model_ready": "gauge",
    "predictor_predictions": "counter",  # drift signal (mlops.drift)
    "predictor_prediction_score": "histogram",
    "predictor_explain_requests": "counter",  # :explain, apart from predictions
    "predictor_explain_request_duration_seconds": "histogram",
    "predictor_explained_words": "histogram",
    "predictor_cache_lookups": "counter",
    "predictor_cache_lookup_duration_seconds": "histogram",
    "predictor_cache_write_errors": "counter",
    "predictor_featurestore_up": "gauge",
    "predictor_tweet_source_requests": "counter",
    "request_preprocess_seconds": "histogram",  # KServe's own
    "request_predict_seconds": "histogram",
    "request_postprocess_seconds": "histogram",
    "process_cpu_seconds": "counter",  # prometheus-client's process collector
    "process_resident_memory_bytes": "gauge",
}
UNITLESS_HISTOGRAMS = {  # counts, 0..1
    "predictor_batch_size",
    "predictor_prediction_score",
    "predictor_explained_words",
}
VERSIONED = (
    "predictor_predictions",
    "predictor_prediction_score",
    "predictor_requests",
    "predictor_request_duration_seconds",
    "predictor_inflight_requests",
    "predictor_queue_wait_seconds",
    "predictor_batch_size",
    "predictor_inference_duration_seconds",
    "predictor_model_info",
    "predictor_cache_lookups",
)


@pytest.fixture(scope="module")
def families(predictor: PredictorProcess) -> dict[str, object]:
    httpx.post(
        f"{predictor.url}/v1/models/sentiment:predict",
        json={"instances": ["count me"]},
        timeout=30,
    )
    text = httpx.get(f"{predictor.url}/metrics", timeout=10).text
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_contract_families_are_exported_with_their_types(families: dict) -> None:
    missing = {n: t for n, t in CONTRACT.items() if n not in families}
    assert not missing, f"not on /metrics: {missing}"
    wrong = {n: families[n].type for n, t in CONTRACT.items() if families[n].type != t}
    assert not wrong, wrong


def test_predictor_families_follow_prometheus_conventions(families: dict) -> None:
    for name, family in families.items():
        if not name.startswith("predictor_"):
            continue
        assert family.documentation, f"{name} has no HELP"
        assert "millis" not in name and not name.endswith("_ms"), f"{name}: use base units"
        if family.type == "histogram" and name not in UNITLESS_HISTOGRAMS:
            assert name.endswith("_seconds"), f"{name}: a latency histogram in seconds"


def test_per_model_series_carry_the_loaded_version(families: dict) -> None:
    (info,) = families["predictor_model_info"].samples
    version = info.labels["version"]
    assert version and version != "unloaded"
    for name in VERSIONED:
        samples = [s for s in families[name].samples if s.labels.get("model") == "sentiment"]
        if name == "predictor_cache_lookups" and not samples:
            continue  # no cache lookups on this predictor's configuration
        assert samples, f"{name}: no sample for the served model"
        assert {s.labels["version"] for s in samples} == {version}, name


def test_unloaded_model_names_fold_into_one_series() -> None:
    """A client naming made-up models cannot mint new series."""
    before = REGISTRY.get_sample_value(
        "predictor_shed_requests_total", {"model": "unknown", "version": ""}
    )
    served = {"sentiment": "v1"}
    metrics.SHED.labels(*metrics.series_labels(served, "made-up-1")).inc()
    metrics.SHED.labels(*metrics.series_labels(served, "made-up-2")).inc()
    after = REGISTRY.get_sample_value(
        "predictor_shed_requests_total", {"model": "unknown", "version": ""}
    )
    assert after == (before or 0) + 2
    assert (
        REGISTRY.get_sample_value(
            "predictor_shed_requests_total", {"model": "made-up-1", "version": ""}
        )
        is None
    )


def test_the_served_version_comes_from_the_servers_map() -> None:
    """No module-global version: the caller's map says which version a series carries."""
    assert metrics.series_labels({"unit-model": "v7"}, "unit-model") == ("unit-model", "v7")
    metrics.REQUESTS.labels("unit-model", "v7", "v1", "200").inc()
    assert (
        REGISTRY.get_sample_value(
            "predictor_requests_total",
            {"model": "unit-model", "version": "v7", "protocol": "v1", "code": "200"},
        )
        == 1
    )


def test_latency_buckets_resolve_milliseconds() -> None:
    buckets = metrics.LATENCY_BUCKETS
    assert list(buckets) == sorted(buckets)
    assert buckets[0] <= 0.001 and buckets[-1] >= 10
    assert sum(1 for b in buckets if b <= 0.1) >= 10, "most resolution below 100 ms"


def test_a_registered_model_is_counted_under_its_name_before_it_loads() -> None:
    """Start-up 503s belong to the served model on the dashboard, not to "unknown"."""
    series = metrics.series_labels({"registered-early": None}, "registered-early")
    assert series == ("registered-early", "")
    metrics.SHED.labels(*series).inc()
    assert (
        REGISTRY.get_sample_value(
            "predictor_shed_requests_total", {"model": "registered-early", "version": ""}
        )
        == 1
    )
