"""The chart's tracing values become the predictor's standard OTEL_* settings and exactly the
egress the exporter needs (rendered and checked, not only validated)."""

from __future__ import annotations

from predictor.app import Settings
from predictor.tracing import TracingSettings
from tests.charts import chart_tools as ct
from tests.charts.test_operator_semantics import predictor_policy

ON = ["tracing.enabled=true", "tracing.endpoint=http://otel-collector.observability:4318"]


def _env() -> dict[str, object]:
    isvc = ct.one(ct.render(sets=ON), "InferenceService")
    pod = isvc["spec"]["predictor"]
    return ct.env_of(ct.container(pod, "kserve-container"))


def test_tracing_is_off_by_default_and_sets_nothing() -> None:
    isvc = ct.one(ct.render(), "InferenceService")
    env = ct.env_of(ct.container(isvc["spec"]["predictor"], "kserve-container"))
    assert not [k for k in env if k.startswith("OTEL_")]


def test_tracing_values_become_the_otel_settings_the_predictor_reads(monkeypatch: object) -> None:
    env = _env()
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    assert env["OTEL_SERVICE_NAME"] == "sentiment-predictor"
    # what the predictor makes of them: its own settings class, as the composition root reads it
    plain = {k: v for k, v in env.items() if isinstance(v, str) and k.startswith("OTEL_")}
    for key, value in plain.items():
        monkeypatch.setenv(key, value)  # type: ignore[attr-defined]
    tracing = Settings.load().tracing
    assert isinstance(tracing, TracingSettings)
    assert tracing.traces_exporter == "otlp" and tracing.traces_sampler_arg == 0.1
    assert tracing.exporter_otlp_endpoint == "http://otel-collector.observability:4318"
    assert tracing.service_name == "sentiment-predictor"


def test_tracing_opens_egress_to_the_collectors_port_only() -> None:
    policy = predictor_policy(sets=ON)
    assert [4318] in [[p["port"] for p in r["ports"]] for r in policy["spec"]["egress"]]
    off = predictor_policy()
    assert [4318] not in [[p["port"] for p in r["ports"]] for r in off["spec"]["egress"]]


def test_tracing_without_an_endpoint_is_refused() -> None:
    result = ct.template_text(sets=["tracing.enabled=true"])
    assert result.returncode != 0 and "tracing.endpoint" in result.stderr
