"""checkov over everything the chart renders for each ci/ values file, predictor pods included.

checkov does not know the InferenceService kind, so the predictor (and canary) pod specs are also
written out as the Deployments KServe makes of them; otherwise the pod-level checks would never
see the containers that matter.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charts import chart_tools as ct

# Every skipped check, with the reason it does not apply. Nothing else may fail.
SKIPS = {
    "CKV_K8S_43": "Image digests are set at deploy time (skaffold writes image.digest, and "
    "image.digest / redis.image.digest pin them for users); the chart cannot know a digest of an "
    "image built later. test_digest_wins_over_tag proves a digest renders as repo@sha256.",
    "CKV_K8S_15": "imagePullPolicy Always costs a registry round trip on every Knative scale-from-"
    "zero and node start; images are addressed by immutable tag or digest, so IfNotPresent is the "
    "safe default (values: image.pullPolicy).",
    "CKV_K8S_35": "Only ci/existing-secret-values.yaml trips it, through the user's own "
    "predictor.extraEnv (the X API token as a secretKeyRef, an example of that escape hatch); "
    "the chart's own objects pass no secret through env (Redis passwords are mounted files), "
    "which ENV_SECRET_ONLY_FROM_EXTRA_ENV below holds to.",
}
# CKV_K8S_35 may fire only for this file, whose extraEnv is the user's, not the chart's.
ENV_SECRET_ONLY_FROM_EXTRA_ENV = "existing-secret-values.yaml"


def _write_rendered(out: Path) -> None:
    for values in ct.CI_VALUES:
        docs = ct.render([values])
        text = yaml.safe_dump_all(docs + ct.predictor_workloads(docs), sort_keys=False)
        (out / f"{values.stem}.yaml").write_text(text)


@pytest.mark.usefixtures("helm_bin")
@pytest.mark.timeout(900)  # the first run installs checkov into .tools (1-2 minutes)
def test_checkov_has_no_unexplained_failures(checkov_bin: Path, tmp_path: Path) -> None:
    assert all(len(reason) > 40 for reason in SKIPS.values()), "each skip needs a written reason"
    _write_rendered(tmp_path)
    reports = _checkov(checkov_bin, "-d", str(tmp_path))
    summary = reports[0]["summary"]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    tally: dict[str, int] = {}
    for check in failed:
        tally[check["check_id"]] = tally.get(check["check_id"], 0) + 1
    print(f"checkov {summary['checkov_version']}: {summary}; failures by check: {tally}")
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= 6 * len(ct.CI_VALUES)
    assert summary["passed"] > 0
    unexplained = [
        f"{c['check_id']} {c['check_name']} in {c['resource']} ({c['file_path']})"
        for c in failed
        if c["check_id"] not in SKIPS
    ]
    assert unexplained == []
    env_secrets = {Path(c["file_path"]).name for c in failed if c["check_id"] == "CKV_K8S_35"}
    assert env_secrets <= {ENV_SECRET_ONLY_FROM_EXTRA_ENV}, env_secrets
    assert set(tally) == set(SKIPS), "a skip that no longer fails: drop it from SKIPS"


def _checkov(checkov_bin: Path, *target: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(checkov_bin), *target, "--framework", "kubernetes",
         "--skip-download", "--quiet", "--compact", "-o", "json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    report = json.loads(result.stdout)
    return report if isinstance(report, list) else [report]


@pytest.mark.usefixtures("helm_bin")
@pytest.mark.timeout(900)
def test_checkov_sees_the_predictor_containers(checkov_bin: Path, tmp_path: Path) -> None:
    """A predictor with root and privilege escalation must fail checkov: the pod checks are live."""
    docs = ct.render([ct.CHART / "ci" / "knative-values.yaml"])
    workload = ct.predictor_workloads(docs)[0]
    main = workload["spec"]["template"]["spec"]["containers"][0]
    main["securityContext"] = {"allowPrivilegeEscalation": True, "runAsUser": 0}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(workload))
    reports = _checkov(checkov_bin, "-f", str(tmp_path / "bad.yaml"))
    failed = {c["check_id"] for r in reports for c in r["results"]["failed_checks"]}
    assert {"CKV_K8S_20", "CKV_K8S_40"} <= failed  # privilege escalation, uid 0
