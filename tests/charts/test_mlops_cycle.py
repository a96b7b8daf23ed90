"""The chart's `mlops.cycle` CronJob: off by default, least privilege, and args the CLI takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops import cycle
from tests.charts import chart_tools as ct

pytestmark = pytest.mark.usefixtures("helm_bin")
VALUES = ct.CHART / "ci" / "mlops-cycle-values.yaml"
NAME = "sentiment-mlops-cycle"
RBAC_KINDS = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


def cronjob(docs: list[ct.Doc]) -> ct.Doc:
    return ct.one(docs, "CronJob")


def pod_spec(docs: list[ct.Doc]) -> dict[str, Any]:
    return dict(cronjob(docs)["spec"]["jobTemplate"]["spec"]["template"]["spec"])


def test_off_by_default() -> None:
    docs = ct.render()
    assert ct.by_kind(docs, "CronJob") == [] and ct.by_kind(docs, "PersistentVolumeClaim") == []
    assert all(d["metadata"]["name"] != NAME for d in docs)


def test_objects_are_valid_kubernetes() -> None:
    docs = [d for d in ct.render([VALUES]) if d["kind"] in {"CronJob", "PersistentVolumeClaim",
                                                           "ServiceAccount"}]  # fmt: skip
    assert {d["kind"] for d in docs} == {"CronJob", "PersistentVolumeClaim", "ServiceAccount"}
    assert [p for d in docs for p in ct.validate_object(d)] == []


def test_no_rbac_and_no_api_token() -> None:
    """It needs nothing from the API server: its own ServiceAccount, no token, no Role."""
    docs = ct.render([VALUES])
    assert {d["kind"] for d in docs} & RBAC_KINDS == set()
    sa = next(d for d in ct.by_kind(docs, "ServiceAccount") if d["metadata"]["name"] == NAME)
    assert sa["automountServiceAccountToken"] is False
    spec = pod_spec(docs)
    assert spec["serviceAccountName"] == NAME and spec["automountServiceAccountToken"] is False


def test_restricted_security_and_one_run_at_a_time() -> None:
    docs = ct.render([VALUES])
    job = cronjob(docs)["spec"]
    assert job["concurrencyPolicy"] == "Forbid"
    assert job["jobTemplate"]["spec"]["backoffLimit"] == 0
    spec = pod_spec(docs)
    assert spec["securityContext"]["runAsNonRoot"] is True
    (c,) = spec["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["resources"]["limits"]["memory"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    reader = "/var/run/secrets/mlops-reader"
    assert mounts == {"models": "/mnt/models", "tmp": "/tmp", "reader-token": reader}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] == "sentiment-models"
    assert "emptyDir" in volumes["tmp"]
    token = volumes["reader-token"]["secret"]
    assert token["secretName"] == "sentiment-api-readers"
    assert token["items"] == [{"key": "tokens", "path": "reader-tokens"}]


def test_the_args_are_what_mlops_cycle_accepts() -> None:
    (c,) = pod_spec(ct.render([VALUES]))["containers"]
    assert c["command"] == ["python", "-m", "mlops.cycle"]
    args = cycle.parse_args(c["args"])
    assert args.stable == Path("/mnt/models/sentiment/20261201-abcd1234")
    assert args.publish_to == "pvc://sentiment-models/sentiment"
    assert args.pvc_root == Path("/mnt/models")
    assert args.state == Path("/mnt/models/.mlops-cycle/state.yaml")
    assert args.state_name == NAME
    assert args.feedback == "http://sentiment-predictor.sentiment.svc.cluster.local"
    assert args.feedback_token_file == Path("/var/run/secrets/mlops-reader/reader-tokens")
    assert args.max_feedback_share == 0.1
    assert args.window == "6h" and args.build_args == ["--mode", "quick"]
    assert args.deployment_mode == "Knative"


def test_extra_args_can_send_the_candidate_to_s3_instead(tmp_path: Path) -> None:
    """The chart README's recipe: a later --publish-to in extraArgs wins over the claim's."""
    s3 = tmp_path / "s3.yaml"
    s3.write_text(yaml.safe_dump({"mlops": {"cycle": {
        "extraArgs": ["--publish-to", "s3://team-models/sentiment"]}}}))  # fmt: skip
    (c,) = pod_spec(ct.render([VALUES, s3]))["containers"]
    assert cycle.parse_args(c["args"]).publish_to == "s3://team-models/sentiment"


def test_an_existing_claim_is_used_and_none_created() -> None:
    docs = ct.render([VALUES], ["mlops.cycle.persistence.existingClaim=team-models",
                                "mlops.cycle.feedbackUrl=redis://redis.shared:6379/0"])  # fmt: skip
    assert ct.by_kind(docs, "PersistentVolumeClaim") == []
    spec = pod_spec(docs)
    assert spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == "team-models"
    args = cycle.parse_args(spec["containers"][0]["args"])
    assert args.publish_to == "pvc://team-models/sentiment"
    assert args.feedback == "redis://redis.shared:6379/0"
    assert args.feedback_token_file is None  # the store, not the predictor: no reader token
    assert "reader-token" not in {v["name"] for v in spec["volumes"]}


def test_reading_the_predictor_without_a_reader_token_fails() -> None:
    result = ct.template_text([VALUES], ["apiTokens.reader.existingSecret="])
    assert result.returncode != 0 and "apiTokens.reader.existingSecret" in result.stderr


def test_a_created_claim_survives_uninstall() -> None:
    pvc = ct.one(ct.render([VALUES]), "PersistentVolumeClaim")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"


def test_enabled_without_a_stable_model_fails() -> None:
    result = ct.template_text(sets=["mlops.cycle.enabled=true"])
    assert result.returncode != 0 and "mlops.cycle.stableDir" in result.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["mlops.cycle.feedbackWeight=0"], "feedbackWeight"),
        (["mlops.cycle.stableDir=/models/sentiment"], "stableDir"),
        (["mlops.cycle.prometheusUrl=prometheus:9090"], "prometheusUrl"),
        (["mlops.cycle.schedul=hourly"], "schedul"),
    ],
)
def test_schema_rejects(sets: list[str], message: str) -> None:
    result = ct.template_text([VALUES], sets)
    assert result.returncode != 0 and "schema" in result.stderr and message in result.stderr
