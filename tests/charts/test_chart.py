"""The chart, through the real helm 4: lint, render, schema-validate, and what each value does."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charts import chart_tools as ct

pytestmark = pytest.mark.usefixtures("helm_bin")

CI_IDS = [p.name for p in ct.CI_VALUES]


def ci(name: str) -> Path:
    return ct.CHART / "ci" / name


def predictor_pod(docs: list[ct.Doc]) -> dict[str, Any]:
    return ct.one(docs, "InferenceService")["spec"]["predictor"]


def test_ci_values_cover_the_named_cases() -> None:
    """The files the issues name exist: default Knative, Standard with HPA, GPU, KEDA, a model
    canary in each mode, a second model by values only, the baked-image flavour."""
    names = set(CI_IDS)
    assert {
        "knative-values.yaml", "standard-hpa-values.yaml", "gpu-values.yaml", "keda-values.yaml",
        "knative-canary-values.yaml", "standard-canary-values.yaml", "second-model-values.yaml",
        "baked-values.yaml",
    } <= names  # fmt: skip


@pytest.mark.parametrize("values", ct.CI_VALUES, ids=CI_IDS)
def test_lint_strict(values: Path) -> None:
    result = ct.helm("lint", "--strict", str(ct.CHART), "-f", str(values))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", ct.CI_VALUES, ids=CI_IDS)
def test_rendered_objects_are_valid(values: Path, shared_crds: Path) -> None:
    """Built-in kinds against Kubernetes 1.37 (kubernetes-validate, strict), custom resources
    against their CRD schemas, and the predictor pod spec as the Deployment KServe makes of it."""
    docs = ct.render([values])
    workloads = ct.predictor_workloads(docs)
    assert workloads, "no InferenceService rendered"
    problems = [p for doc in docs + workloads for p in ct.validate_object(doc)]
    assert problems == []


def test_crd_validation_catches_a_misspelt_field(shared_crds: Path) -> None:
    """The strict CRD check is not a rubber stamp: a typo the API server would prune fails."""
    isvc = ct.one(ct.render([ci("knative-values.yaml")]), "InferenceService")
    isvc["spec"]["predictor"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/x"
    isvc["spec"]["predictor"]["minReplicas"] = "two"
    problems = ct.validate_object(isvc)
    assert any("paht" in p for p in problems), problems
    assert any("minReplicas" in p for p in problems), problems


# --- what the values do ---------------------------------------------------------------------------


def test_default_is_knative_with_redis_sidecar_and_v2_probes() -> None:
    docs = ct.render()
    isvc = ct.one(docs, "InferenceService")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    pod = isvc["spec"]["predictor"]
    assert [c["name"] for c in pod["containers"]] == ["kserve-container", "redis"]
    main = ct.container(pod, "kserve-container")
    assert main["args"] == [
        "--model_name=sentiment", "--http_port=8080", "--grpc_port=8081", "--log_level=INFO",
        "--bind_address=0.0.0.0",  # the binary binds loopback unless told
    ]  # fmt: skip
    # Knative accepts one port per pod; Redis declares none.
    assert [p["containerPort"] for c in pod["containers"] for p in c.get("ports", [])] == [8080]
    assert main["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert main["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    assert main["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    env = ct.env_of(main)
    assert env["PREDICTOR_REDIS_URL"] == "redis://127.0.0.1:6379/0"  # password: a mounted file
    assert env["PREDICTOR_DEVICE"] == "cpu"
    assert env["PREDICTOR_DRAIN_TIMEOUT_S"] == "30"
    assert pod["scaleMetric"] == "concurrency"


def test_drain_fits_in_the_grace_period() -> None:
    pod = predictor_pod(ct.render())
    main = ct.container(pod, "kserve-container")
    pre_stop = main["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = int(ct.env_of(main)["PREDICTOR_DRAIN_TIMEOUT_S"])
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain


def test_restricted_pod_security_by_default() -> None:
    docs = ct.render()
    pod = predictor_pod(docs)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert isinstance(sc["runAsUser"], int) and sc["runAsUser"] >= 10000, c["name"]
        assert c["resources"]["limits"]["memory"], c["name"]
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert "emptyDir" in tmp
    assert ct.one(docs, "ServiceAccount")["automountServiceAccountToken"] is False


def test_redis_config_disables_persistence_and_dangerous_commands() -> None:
    docs = ct.render()
    conf = ct.one(docs, "ConfigMap")["data"]["redis.conf"]
    assert 'save ""' in conf and "appendonly no" in conf
    assert "maxmemory 96mb" in conf and "maxmemory-policy allkeys-lru" in conf
    for command in ("FLUSHALL", "CONFIG", "KEYS", "DEBUG"):
        assert f'rename-command {command} ""' in conf
    assert "bind 127.0.0.1" in conf
    redis = ct.container(predictor_pod(docs), "redis")
    assert redis["command"] == ["sh", "-c"]
    assert redis["args"][0].endswith("&& exec redis-server /etc/redis/redis.conf")
    assert {"readinessProbe", "livenessProbe", "startupProbe"} <= redis.keys()
    secret = ct.one(docs, "Secret")
    assert len(secret["data"]["redis-password"]) > 20


def test_existing_secret_replaces_the_chart_secret() -> None:
    docs = ct.render([ci("existing-secret-values.yaml")])
    assert ct.by_kind(docs, "Secret") == []
    main = ct.container(predictor_pod(docs), "kserve-container")
    files = next(v for v in predictor_pod(docs)["volumes"] if v["name"] == "featurestore-secrets")
    assert files["secret"]["secretName"] == "sentiment-redis-auth"
    assert files["secret"]["items"] == [{"key": "password", "path": "PREDICTOR_REDIS_PASSWORD"}]
    assert ct.env_of(main)["PREDICTOR_CACHE_TTL_SECONDS"] == "3600"


def test_redis_config_change_rolls_the_pods() -> None:
    """The checksum annotation follows redis.conf, which is not in the pod spec itself."""
    before = predictor_pod(ct.render())["annotations"]["checksum/redis-config"]
    after = predictor_pod(ct.render(sets=["redis.maxmemory=64mb"]))["annotations"]
    assert after["checksum/redis-config"] != before
    same = predictor_pod(ct.render())["annotations"]["checksum/redis-config"]
    assert same == before


def test_standard_hpa_exposes_grpc_and_scales_on_cpu() -> None:
    isvc = ct.one(ct.render([ci("standard-hpa-values.yaml")]), "InferenceService")
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
    assert annotations["serving.kserve.io/autoscalerClass"] == "hpa"
    pod = isvc["spec"]["predictor"]
    assert (pod["scaleMetric"], pod["scaleMetricType"], pod["scaleTarget"]) == (
        "cpu", "Utilization", 70
    )  # fmt: skip
    assert (pod["minReplicas"], pod["maxReplicas"]) == (2, 6)
    ports = {p["name"]: p["containerPort"] for p in pod["containers"][0]["ports"]}
    assert ports == {"http1": 8080, "h2c": 8081}
    assert "canaryTrafficPercent" not in pod


def test_keda_scales_on_a_prometheus_query_with_a_gateway_canary() -> None:
    isvc = ct.one(ct.render([ci("keda-values.yaml")]), "InferenceService")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "keda"
    metric = isvc["spec"]["predictor"]["autoScaling"]["metrics"][0]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["backend"] == "prometheus"
    assert 'pod=~"sentiment-predictor-.*"' in metric["external"]["metric"]["query"]
    # per pod over the summed query: test_operator_semantics checks what KServe and KEDA make of it
    assert metric["external"]["target"]["type"] == "AverageValue"
    canary = isvc["spec"]["canary"]
    assert len(canary) == 1 and canary[0]["trafficPercent"] == 10
    assert canary[0]["predictor"]["name"] == "canary"  # KServe names every spec.canary entry
    main = ct.container(canary[0]["predictor"], "kserve-container")
    stable = ct.container(isvc["spec"]["predictor"], "kserve-container")
    assert main["image"] == stable["image"]  # a model canary: the same runtime image
    assert ct.env_of(main)["STORAGE_URI"].endswith(":20261015-a17b2e90")
    assert ct.env_of(stable)["STORAGE_URI"].endswith(":20260901-3f2a9c1d")


def test_knative_canary_and_scale_to_zero() -> None:
    pod = predictor_pod(ct.render([ci("knative-canary-values.yaml")]))
    assert pod["canaryTrafficPercent"] == 20
    # The revision this upgrade creates is the canary: it carries the canary's model; the
    # previous revision (model.storageUri) keeps the other 80%.
    env = ct.env_of(ct.container(pod, "kserve-container"))
    assert env["STORAGE_URI"] == "s3://tweet-sentiment-models/sentiment/20261015-a17b2e90"
    assert pod["minReplicas"] == 0
    assert (pod["scaleMetric"], pod["scaleTarget"]) == ("rps", 40)
    retention = "autoscaling.knative.dev/scale-to-zero-pod-retention-period"
    assert pod["annotations"][retention] == "10m"


# --- where the model comes from -------------------------------------------------------------------


def _model_env(pod: dict[str, Any]) -> dict[str, Any]:
    return ct.env_of(ct.container(pod, "kserve-container"))


@pytest.mark.parametrize(
    ("values", "uri"),
    [
        ("knative-values.yaml", "s3://tweet-sentiment-models/sentiment/20260901-3f2a9c1d"),
        ("standard-hpa-values.yaml",
         "oci://ghcr.io/tweet-sentiment/models/sentiment:20260901-3f2a9c1d"),
        ("gpu-values.yaml", "gs://tweet-sentiment-models/sentiment/20260901-3f2a9c1d"),
    ],
)  # fmt: skip
def test_storage_uri_reaches_kserve_container_and_the_predictor_reads_mnt_models(
    values: str, uri: str
) -> None:
    """KServe's custom-predictor contract: STORAGE_URI on kserve-container makes the webhook add
    the storage initializer (or the modelcar for oci://), which fills /mnt/models."""
    env = _model_env(predictor_pod(ct.render([ci(values)])))
    assert env["STORAGE_URI"] == uri
    assert env["PREDICTOR_MODEL_DIR"] == "/mnt/models"


def test_default_model_is_a_pvc_and_the_runtime_image_has_none() -> None:
    env = _model_env(predictor_pod(ct.render()))
    assert env["STORAGE_URI"] == "pvc://sentiment-models/sentiment"
    assert env["PREDICTOR_MODEL_DIR"] == "/mnt/models"


def test_baked_flavour_serves_the_model_inside_the_image() -> None:
    pod = predictor_pod(ct.render([ci("baked-values.yaml")]))
    main = ct.container(pod, "kserve-container")
    assert "STORAGE_URI" not in ct.env_of(main)
    assert ct.env_of(main)["PREDICTOR_MODEL_DIR"] == "/models/sentiment"
    assert main["image"].endswith(":0.1.0-baked")


def test_standard_canary_is_a_second_model_on_the_same_image() -> None:
    isvc = ct.one(ct.render([ci("standard-canary-values.yaml")]), "InferenceService")
    stable, canary = isvc["spec"]["predictor"], isvc["spec"]["canary"][0]
    assert canary["trafficPercent"] == 10
    assert _model_env(stable)["STORAGE_URI"].endswith(":20260901-3f2a9c1d")
    assert _model_env(canary["predictor"])["STORAGE_URI"].endswith(":20261015-a17b2e90")
    images = {ct.container(p, "kserve-container")["image"] for p in (stable, canary["predictor"])}
    assert images == {"ghcr.io/tweet-sentiment/predictor:0.1.0"}


@pytest.mark.parametrize(
    "values", ["knative-canary-values.yaml", "standard-canary-values.yaml", "baked-values.yaml",
               "second-model-values.yaml", "gpu-values.yaml"],
)  # fmt: skip
def test_sidecar_probes_security_and_drain_survive_in_every_model_source(values: str) -> None:
    """Whatever delivers the model, every predictor (stable and Standard canary) keeps the Redis
    sidecar, the v2 probes, the restricted security context and the drain timing."""
    isvc = ct.one(ct.render([ci(values)]), "InferenceService")
    pods = [isvc["spec"]["predictor"]] + [c["predictor"] for c in isvc["spec"].get("canary", [])]
    for pod in pods:
        assert [c["name"] for c in pod["containers"]] == ["kserve-container", "redis"]
        main = ct.container(pod, "kserve-container")
        assert main["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        drain = int(ct.env_of(main)["PREDICTOR_DRAIN_TIMEOUT_S"])
        assert (
            pod["terminationGracePeriodSeconds"]
            >= main["lifecycle"]["preStop"]["sleep"]["seconds"] + drain
        )


def test_second_model_by_values_only() -> None:
    """Another text classifier: its name and storageUri change; the image and the pod do not,
    and no label name appears anywhere in what the chart renders (they are in the card)."""
    docs = ct.render([ci("second-model-values.yaml")])
    isvc = ct.one(docs, "InferenceService")
    assert isvc["metadata"]["name"] == "tone"
    main = ct.container(isvc["spec"]["predictor"], "kserve-container")
    assert "--model_name=tone" in main["args"]
    assert ct.env_of(main)["STORAGE_URI"] == "s3://tweet-sentiment-models/tone/20261020-5c0ffee1"
    assert main["image"] == ct.container(predictor_pod(ct.render()), "kserve-container")["image"]
    rendered = ct.template_text([ci("second-model-values.yaml")]).stdout
    assert not {"negative", "neutral", "positive"} & set(re.findall(r"[a-z]+", rendered))


def test_storage_secret_is_attached_to_the_service_account() -> None:
    docs = ct.render(sets=["model.storageSecretName=s3-models"])
    assert ct.one(docs, "ServiceAccount")["secrets"] == [{"name": "s3-models"}]
    assert "secrets" not in ct.one(ct.render(), "ServiceAccount")


def test_the_servingruntime_crd_cannot_hold_this_pod(shared_crds: Path) -> None:
    """Why the chart uses a custom predictor (STORAGE_URI) and not a ServingRuntime: the real
    ServingRuntime schema has no place for the pod-level settings the drain and the restricted
    security need, so they would be split across two objects (and one runtime shared by the
    stable and the canary could not canary an image)."""
    crd = yaml.safe_load((ct.CRDS / "serving.kserve.io_servingruntimes.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    needed = {"terminationGracePeriodSeconds", "securityContext", "serviceAccountName",
              "automountServiceAccountToken"}  # fmt: skip
    pod = predictor_pod(ct.render())
    assert needed <= pod.keys()
    assert needed.isdisjoint(spec["properties"])


def test_gpu_values() -> None:
    pod = predictor_pod(ct.render([ci("gpu-values.yaml")]))
    main = ct.container(pod, "kserve-container")
    assert main["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert main["resources"]["limits"]["memory"] == "8Gi"
    env = ct.env_of(main)
    assert (env["PREDICTOR_DEVICE"], env["PREDICTOR_PRECISION"]) == ("cuda", "auto")
    assert env["PREDICTOR_MAX_BATCH_SIZE"] == "64"
    assert main["image"] == "ghcr.io/tweet-sentiment/predictor:0.1.0-cuda"
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert "nvidia.com/gpu" not in ct.container(pod, "redis")["resources"].get("limits", {})


def test_digest_wins_over_tag() -> None:
    digest = "sha256:" + "ab" * 32
    pod = predictor_pod(ct.render(sets=[f"image.digest={digest}"]))
    main = ct.container(pod, "kserve-container")
    assert main["image"] == f"ghcr.io/tweet-sentiment/predictor@{digest}"


def test_network_policy_and_pdb_select_the_predictor_pods() -> None:
    docs = ct.render()
    selector = {"serving.kserve.io/inferenceservice": "sentiment", "component": "predictor"}
    policies = {d["metadata"]["name"]: d for d in ct.by_kind(docs, "NetworkPolicy")}
    policy = policies["sentiment-predictor"]
    assert policy["spec"]["podSelector"]["matchLabels"] == selector
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ports = {p["port"] for p in policy["spec"]["ingress"][0]["ports"]}
    assert ports == {8012, 8013}  # Knative's queue-proxy fronts the predictor
    pdb = ct.one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert pdb["spec"]["maxUnavailable"] == 1


def test_observability_objects_carry_the_chart_files() -> None:
    docs = ct.render([ci("observability-values.yaml")])
    config_maps = {d["metadata"]["name"]: d for d in ct.by_kind(docs, "ConfigMap")}
    dashboards = config_maps["sentiment-dashboards"]
    assert dashboards["metadata"]["namespace"] == "monitoring"
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    files = sorted((ct.CHART / "dashboards").glob("*.json"))
    assert files and sorted(dashboards["data"]) == [f.name for f in files]
    for f in files:
        assert json.loads(dashboards["data"][f.name]) == json.loads(f.read_text())
    rule = ct.one(docs, "PrometheusRule")
    expected = yaml.safe_load((ct.CHART / "files" / "prometheus-rules.yaml").read_text())
    assert rule["spec"]["groups"] == expected["groups"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    monitor = ct.one(docs, "PodMonitor")
    assert monitor["spec"]["podMetricsEndpoints"][0]["portNumber"] == 8080
    assert monitor["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics"
    assert ct.one(docs, "ServiceMonitor")["spec"]["endpoints"][0]["targetPort"] == 8080
    for doc in docs:
        assert doc["metadata"].get("annotations", {}).get("owner") == "ml-serving@example.com"


def test_observability_objects_are_off_by_default() -> None:
    kinds = {d["kind"] for d in ct.render()}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


def test_helm_test_pod_calls_readiness_then_predicts() -> None:
    docs = ct.render()
    pod = next(d for d in ct.by_kind(docs, "Pod"))
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    assert "http://sentiment-predictor.sentiment.svc.cluster.local" in script
    assert "/v2/health/ready" in script and "/v2/models/sentiment/ready" in script
    assert "/v1/models/sentiment:predict" in script  # run by test_operator_semantics


def test_notes_tell_how_to_call_and_watch() -> None:
    result = ct.helm("install", "sentiment", str(ct.CHART), "--dry-run=client", "-n", "sentiment")
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "/v1/models/sentiment:predict" in notes and "/v2/models/sentiment/infer" in notes
    assert "kubectl -n sentiment get inferenceservice sentiment -w" in notes


# --- bad values are rejected ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["canary.trafficPercent=101"], "trafficPercent"),
        (["canary.trafficPercent=-1"], "trafficPercent"),
        (["predictor.deploymentMode=Serverless"], "deploymentMode"),
        (["predictor.replicas=3"], "replicas"),  # unknown key: a typo fails
        (["redis.maxmemoryPolicy=lru"], "maxmemoryPolicy"),
        (["image.digest=latest"], "digest"),
        (["autoscaling.knative.metric=cpu"], "metric"),
        (["model.storageUri=hf://org/model"], "storageUri"),
        (["model.storageUri=https://example.com/model.tgz"], "storageUri"),
        (["model.storageUri=oci://ghcr.io/org/models/sentiment"], "storageUri"),  # no version
        (["canary.storageUri=ftp://host/model"], "storageUri"),
    ],
)
def test_schema_rejects(sets: list[str], message: str) -> None:
    result = ct.template_text(sets=sets)
    assert result.returncode != 0, f"{sets} rendered"
    assert "schema" in result.stderr and message in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["predictor.terminationGracePeriodSeconds=20"], "at least preStopSleepSeconds"),
        (["autoscaling.minReplicas=5", "autoscaling.maxReplicas=2"], "above"),
        (["predictor.deploymentMode=Standard", "autoscaling.minReplicas=0"], "scale to zero"),
        (["predictor.deploymentMode=Standard", "canary.enabled=true"], "canary.image.tag"),
        (["redis.auth.password=p@ss word"], "redis.conf requirepass line"),
        (
            ["model.storageUri=", "canary.enabled=true", "canary.storageUri=s3://bkt/m/v2/"],
            "needs model.storageUri",
        ),
    ],
)
def test_template_rejects_inconsistent_values(sets: list[str], message: str) -> None:
    result = ct.template_text(sets=sets)
    assert result.returncode != 0, f"{sets} rendered"
    assert message in result.stderr, result.stderr


# --- documentation and schema strictness ----------------------------------------------------------


def _leaf_paths(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        return [p for k, v in node.items() for p in _leaf_paths(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")]


def test_every_value_is_documented() -> None:
    """Each value has a `## @param` line for itself or for an enclosing object it documents."""
    text = (ct.CHART / "values.yaml").read_text()
    documented = set(re.findall(r"^\s*## @param (\S+) \S", text, flags=re.M))
    values = yaml.safe_load(text)
    undocumented = [
        path
        for path in _leaf_paths(values)
        if not any(path == d or path.startswith(d + ".") for d in documented)
    ]
    assert undocumented == []
    stale = [d for d in documented if not _has_path(values, d)]
    assert stale == [], "documented values that do not exist"


def _has_path(values: dict[str, Any], dotted: str) -> bool:
    node: Any = values
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def test_schema_is_closed_everywhere() -> None:
    """Every object with named properties forbids others: typos fail at any depth."""
    schema = json.loads((ct.CHART / "values.schema.json").read_text())
    open_objects: list[str] = []

    def walk(node: dict[str, Any], where: str) -> None:
        if "properties" in node and node.get("additionalProperties") is not False:
            open_objects.append(where or "<root>")
        for key, child in node.get("properties", {}).items():
            walk(child, f"{where}.{key}")

    walk(schema, "")
    assert open_objects == []
    values = yaml.safe_load((ct.CHART / "values.yaml").read_text())
    assert set(values) <= set(schema["properties"])


def _storage_rules(sets: list[str]) -> list[dict[str, Any]]:
    policies = {d["metadata"]["name"]: d for d in ct.by_kind(ct.render(sets=sets), "NetworkPolicy")}
    policy = policies["sentiment-predictor"]
    return [r for r in policy["spec"]["egress"] if {p["port"] for p in r["ports"]} == {443}]


def test_object_store_models_open_egress_for_the_storage_initializer_only() -> None:
    """The storage initializer runs inside the pod: an s3:// or gs:// model needs egress to
    the object store, a pvc:// or oci:// one none (the kubelet pulls modelcars)."""
    assert _storage_rules([]) == []  # the default pvc:// model
    assert _storage_rules(["model.storageUri=oci://ghcr.io/acme/models:20260101-abc"]) == []
    (rule,) = _storage_rules(["model.storageUri=s3://bucket/sentiment/v1/"])
    assert "to" not in rule  # any destination, on 443 only
    canary = ["canary.enabled=true", "canary.storageUri=gs://bucket/sentiment/v2/"]
    assert len(_storage_rules(canary)) == 1
    assert _storage_rules(canary[1:]) == []  # a disabled canary's URI opens nothing
    (rule,) = _storage_rules(
        [
            "model.storageUri=s3://bucket/m/",
            "networkPolicy.storageEgress.to[0].ipBlock.cidr=10.0.0.0/8",
        ]
    )
    assert rule["to"] == [{"ipBlock": {"cidr": "10.0.0.0/8"}}]
