import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from mlops.canary import CHART_VALUES, Rollout, merge, next_step, next_values
from mlops.gates import Verdict

CHART = CHART_VALUES.parent
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def chart_accepts(*overrides: dict[str, Any]) -> dict[str, Any]:
    """The chart's defaults with the overrides merged, validated by the chart's own schema."""
    values: dict[str, Any] = yaml.safe_load(CHART_VALUES.read_text())
    for o in overrides:
        values = merge(values, o)
    jsonschema.validate(values, SCHEMA)
    return values


def test_chart_defaults_mean_no_canary_running() -> None:
    now = Rollout.from_values([])
    assert now == Rollout(False, 0, "Knative", stable_uri="pvc://sentiment-models/sentiment")


def test_values_files_layer_in_order(tmp_path: Path) -> None:
    later = tmp_path / "later.yaml"
    later.write_text("canary:\n  trafficPercent: 50\n")
    now = Rollout.from_values([CHART / "ci" / "knative-canary-values.yaml", later])
    assert (now.enabled, now.percent) == (True, 50)


@pytest.mark.parametrize(("percent", "step"), [(0, 10), (10, 50), (20, 50), (50, 100), (99, 100)])
def test_steps(percent: int, step: int) -> None:
    assert next_step(percent) == step


@pytest.mark.parametrize(
    ("verdict", "percent", "expected"),
    [
        (Verdict.PROMOTE, 0, {"canary": {"enabled": True, "trafficPercent": 10}}),
        (Verdict.PROMOTE, 10, {"canary": {"enabled": True, "trafficPercent": 50}}),
        (Verdict.PROMOTE, 50, {"canary": {"enabled": False}}),
        (Verdict.HOLD, 10, {"canary": {"enabled": True, "trafficPercent": 10}}),
        (Verdict.HOLD, 0, {"canary": {"enabled": True, "trafficPercent": 0}}),
        (Verdict.ROLLBACK, 50, {"canary": {"enabled": True, "trafficPercent": 0}}),
    ],
)
def test_every_step_is_a_values_file_the_chart_accepts(
    verdict: Verdict, percent: int, expected: dict[str, Any]
) -> None:
    now = Rollout(percent > 0, percent)
    values = next_values(verdict, now)
    assert values == expected
    merged = chart_accepts(values)
    assert merged["canary"]["enabled"] == expected["canary"]["enabled"]


def test_standard_mode_promotion_moves_the_canary_image_to_the_main_one(tmp_path: Path) -> None:
    current = tmp_path / "standard-canary.yaml"
    current.write_text(
        "predictor: {deploymentMode: Standard}\n"
        "canary: {enabled: true, trafficPercent: 50, image: {tag: '0.3.0'}}\n"
    )
    now = Rollout.from_values([current])
    values = next_values(Verdict.PROMOTE, now)
    assert values == {"canary": {"enabled": False}, "image": {"tag": "0.3.0", "digest": ""}}
    merged = chart_accepts(yaml.safe_load(current.read_text()), values)
    assert merged["image"]["tag"] == "0.3.0"


STABLE = "s3://tweet-sentiment-models/sentiment/20260901-3f2a9c1d"
CANDIDATE = "s3://tweet-sentiment-models/sentiment/20261015-a17b2e90/"


@pytest.mark.parametrize(
    ("verdict", "percent", "expected"),
    [
        (Verdict.PROMOTE, 0, {"canary": {"enabled": True, "trafficPercent": 10,
                                         "storageUri": CANDIDATE}}),
        (Verdict.PROMOTE, 10, {"canary": {"enabled": True, "trafficPercent": 50,
                                          "storageUri": CANDIDATE}}),
        (Verdict.HOLD, 10, {"canary": {"enabled": True, "trafficPercent": 10,
                                       "storageUri": CANDIDATE}}),
        # 100%: the candidate becomes the stable model; the canary slot is emptied.
        (Verdict.PROMOTE, 50, {"canary": {"enabled": False, "storageUri": ""},
                               "model": {"storageUri": CANDIDATE}}),
        # Rollback: 0% and nothing of the stable side is written, so it stays as it was.
        (Verdict.ROLLBACK, 50, {"canary": {"enabled": True, "trafficPercent": 0}}),
    ],
)  # fmt: skip
def test_the_candidate_storage_uri_goes_into_the_step(
    verdict: Verdict, percent: int, expected: dict[str, Any]
) -> None:
    now = Rollout(percent > 0, percent, stable_uri=STABLE)
    values = next_values(verdict, now, candidate_uri=CANDIDATE)
    assert values == expected
    merged = chart_accepts({"model": {"storageUri": STABLE}}, values)
    want_stable = CANDIDATE if "model" in expected else STABLE
    assert merged["model"]["storageUri"] == want_stable


def test_a_running_canary_keeps_its_storage_uri_without_a_new_one(tmp_path: Path) -> None:
    now = Rollout.from_values([CHART / "ci" / "knative-canary-values.yaml"])
    assert now.canary_uri.endswith("20261015-a17b2e90")
    assert now.stable_uri.endswith("20260901-3f2a9c1d")
    assert next_values(Verdict.PROMOTE, now)["canary"]["storageUri"] == now.canary_uri
