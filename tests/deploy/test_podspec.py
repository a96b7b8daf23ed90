"""The fast half of the pod test: every values file's rendered pod as podman arguments.

No image and no podman run: `harness.podspec` plans each predictor pod (and canary) of every
values file, and the plan is checked against the render itself (image, args, env, mounts,
security context, limits, probes, grace period), the unhonoured fields against the named
allow-list, and KServe's storage additions against what KServe's webhook writes. The slow half,
tests/deploy/test_pod.py, runs such plans.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.podspec import (
    ALLOWED,
    PODMAN_SECCOMP,
    Container,
    PlanError,
    PodPlan,
    UnhonouredFields,
    expand,
    iter_mounts,
    plan_pod,
    predictors,
)
from tests.charts.chart_tools import CHART, CI_VALUES, Doc, render

# Only for ci/gpu-values.yaml: what a CPU machine cannot do for a GPU pod.
GPU_ALLOWED = {
    "runtimeClassName": "the NVIDIA container runtime: no GPU on these machines",
    "containers[kserve-container].resources.limits.nvidia.com/gpu": "no GPU on these machines",
}
VALUES = [None, *CI_VALUES]
STUB = "stub-secret-value"


def stub_objects(docs: list[Doc]) -> list[Doc]:
    """A Secret for every name the pod reads that the render does not make (an operator's)."""
    rendered = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    wanted: dict[str, set[str]] = {}
    for _, _, pod in predictors(docs):
        for vol in pod.get("volumes", []):
            if "secret" in vol:
                keys = {i["key"] for i in vol["secret"].get("items", [])}
                wanted.setdefault(vol["secret"]["secretName"], set()).update(keys)
            for source in vol.get("projected", {}).get("sources", []):  # the API-token files
                if "secret" in source:
                    keys = {i["key"] for i in source["secret"].get("items", [])}
                    wanted.setdefault(source["secret"]["name"], set()).update(keys)
        for c in pod["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    wanted.setdefault(ref["name"], set()).add(ref["key"])
    return [
        {"kind": "Secret", "metadata": {"name": n}, "stringData": dict.fromkeys(keys, STUB)}
        for n, keys in wanted.items()
        if n not in rendered
    ]


def plans(values: Path | None, tmp: Path) -> list[tuple[Doc, PodPlan]]:
    docs = render([values] if values else [])
    objects = stub_objects(docs)
    out = []
    for role, _, pod in predictors(docs):
        plan = plan_pod(
            docs, tmp / role, role=role, objects=objects, claims={"sentiment-models": tmp / "pvc"}
        )
        out.append((pod, plan))
    return out


def flag_values(c: Container, flag: str) -> list[str]:
    args = c.create_args
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


@pytest.mark.parametrize("values", VALUES, ids=[v.name if v else "default" for v in VALUES])
def test_every_values_file_becomes_the_podman_pod_it_renders(
    values: Path | None, tmp_path: Path, helm_bin: Path
) -> None:
    allowed = {**ALLOWED, **(GPU_ALLOWED if values and values.name == "gpu-values.yaml" else {})}
    for pod, plan in plans(values, tmp_path):
        assert plan.not_allowed(allowed) == [], plan.unhonoured
        assert plan.grace_seconds == pod["terminationGracePeriodSeconds"]
        for spec in pod["containers"]:
            c = plan.container(spec["name"])
            assert c.image == spec["image"]
            tail = [spec["image"], *spec.get("args", [])]
            assert c.create_args[-len(tail) :] == tail  # the rendered args, as they are
            if "command" in spec:
                assert flag_values(c, "--entrypoint") == [json.dumps(spec["command"])]
            env = flag_values(c, "-e")
            for e in spec.get("env", []):  # a value, or the (stub) Secret's for a secretKeyRef
                assert f"{e['name']}={e.get('value', STUB)}" in env, e
            mounts = {dst: ro for _, dst, ro in iter_mounts(c)}
            kinds = {v["name"]: v for v in pod.get("volumes", [])}
            for m in spec.get("volumeMounts", []):
                vol = kinds[m["name"]]
                assert mounts[m["mountPath"]] == (
                    m.get("readOnly", False) or "secret" in vol or "configMap" in vol
                ), m
            sc = {**pod.get("securityContext", {}), **spec.get("securityContext", {})}
            assert flag_values(c, "--user") == [f"{sc['runAsUser']}:{sc['runAsGroup']}"]
            assert flag_values(c, "--group-add") == [str(pod["securityContext"]["fsGroup"])]
            assert f"seccomp={PODMAN_SECCOMP}" in flag_values(c, "--security-opt")
            if sc.get("readOnlyRootFilesystem"):
                assert "--read-only" in c.create_args
                assert "--read-only-tmpfs=false" in c.create_args  # no tmpfs the spec lacks
            if sc.get("allowPrivilegeEscalation") is False:
                assert "no-new-privileges" in flag_values(c, "--security-opt")
            assert flag_values(c, "--cap-drop") == sc.get("capabilities", {}).get("drop", [])
            limits = spec.get("resources", {}).get("limits", {})
            if "memory" in limits:
                assert flag_values(c, "--memory") != []
            for kind in ("startup", "readiness", "liveness"):
                rendered = spec.get(f"{kind}Probe")
                planned = [p for p in c.probes if p.kind == kind]
                assert bool(rendered) == bool(planned), kind
                if rendered:
                    p = planned[0]
                    assert p.period == rendered.get("periodSeconds", 10)
                    assert p.failure_threshold == rendered.get("failureThreshold", 3)
                    assert p.timeout == rendered.get("timeoutSeconds", 1)
                    if "httpGet" in rendered:
                        assert p.target[1:] == (
                            rendered["httpGet"]["path"],
                            str(rendered["httpGet"]["port"]),
                        )
                    else:
                        assert list(p.target) == rendered["exec"]["command"]
            pre_stop = spec.get("lifecycle", {}).get("preStop", {}).get("sleep")
            assert (c.pre_stop.target if c.pre_stop else None) == (
                (str(pre_stop["seconds"]),) if pre_stop else None
            )


def test_default_values_kserve_container_arguments(tmp_path: Path, helm_bin: Path) -> None:
    """The whole argument list for the default pod's predictor, pinned."""
    ((_, plan),) = plans(None, tmp_path)
    c = plan.container("kserve-container")
    v = tmp_path / "predictor" / "volumes"
    secrets = (
        f"type=bind,source={v / 'featurestore-secrets'},destination=/var/run/secrets/predictor"
    )
    model = f"type=bind,source={tmp_path / 'pvc' / 'sentiment'},destination=/mnt/models"
    assert c.create_args == [
        "--pod", "sentiment-predictor", "--name", "sentiment-predictor-kserve-container",
        "--pull", "missing", "--user", "10001:10001", "--group-add", "10001",
        "--security-opt", f"seccomp={PODMAN_SECCOMP}", "--read-only", "--read-only-tmpfs=false",
        "--security-opt", "no-new-privileges", "--cap-drop", "ALL",
        "--cpus", "2", "--memory", str(2 * 2**30), "--memory-swap", str(2 * 2**30),
        "--cpu-shares", "1024",
        "-e", "PREDICTOR_REDIS_URL=redis://127.0.0.1:6379/0",
        "-e", "STORAGE_URI=pvc://sentiment-models/sentiment",
        "-e", "PREDICTOR_MODEL_DIR=/mnt/models", "-e", "PREDICTOR_DEVICE=cpu",
        "-e", "PREDICTOR_PRECISION=auto", "-e", "PREDICTOR_CPU_THREADS=0",
        "-e", "PREDICTOR_DRAIN_TIMEOUT_S=30",
        "--mount", f"type=bind,source={v / 'tmp'},destination=/tmp",
        "--mount", f"{secrets},ro=true", "--mount", f"{model},ro=true",
        "ghcr.io/tweet-sentiment/predictor:0.1.0",
        "--model_name=sentiment", "--http_port=8080", "--grpc_port=8081", "--log_level=INFO",
        "--bind_address=0.0.0.0",
    ]  # fmt: skip
    assert plan.pod_args == [
        "--name", "sentiment-predictor", "--hostname", "sentiment-predictor",
        "--share", "ipc,net,uts",
    ]  # fmt: skip
    assert plan.volumes["tmp"].tmpfs_bytes == 64 * 2**20  # medium Memory, sizeLimit 64Mi
    # The password files: the Secret's key at the path the predictor reads, group fsGroup,
    # 0440 as the kubelet leaves a defaultMode 0440 file under fsGroup.
    data, mode = plan.volumes["featurestore-secrets"].files["PREDICTOR_REDIS_PASSWORD"]
    assert len(data) == 32 and mode == 0o440
    assert plan.volumes["redis-password"].files["password"] == (data, 0o440)


def test_the_redis_sidecar_lives_through_the_predictors_pre_stop(
    tmp_path: Path, helm_bin: Path
) -> None:
    """Found by the pod run: Redis without a preStop got SIGTERM at once, so requests inside
    the predictor's preStop window (when the pod still serves) lost their feature store."""
    ((_, plan),) = plans(None, tmp_path)
    assert plan.container("redis").pre_stop == plan.container("kserve-container").pre_stop
    assert plan.container("redis").pre_stop is not None


def test_s3_gets_kserves_storage_initializer_with_the_service_accounts_credentials(
    tmp_path: Path, helm_bin: Path
) -> None:
    docs = render(sets=["model.storageUri=s3://bucket/m/v1", "model.storageSecretName=store"])
    store = {
        "kind": "Secret",
        "metadata": {"name": "store", "annotations": {
            "serving.kserve.io/s3-endpoint": "10.0.0.5:9000", "serving.kserve.io/s3-usehttps": "0",
            "serving.kserve.io/s3-region": "eu-west-1",
        }},
        "stringData": {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "key"},
    }  # fmt: skip
    plan = plan_pod(docs, tmp_path, objects=[store]).check()
    (init,) = plan.init_containers
    assert init.name == "storage-initializer" and init.host_process
    assert init.args == ["s3://bucket/m/v1", "/mnt/models"]
    assert init.env == {
        "AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "key", "S3_USE_HTTPS": "0",
        "S3_ENDPOINT": "10.0.0.5:9000", "AWS_ENDPOINT_URL": "http://10.0.0.5:9000",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }  # fmt: skip
    shared = str(plan.volumes["kserve-provision-location"].host)
    assert (shared, "/mnt/models", False) in iter_mounts(init)
    assert (shared, "/mnt/models", True) in iter_mounts(plan.container("kserve-container"))
    with pytest.raises(PlanError, match="Secret 'store'"):
        plan_pod(docs, tmp_path)


def test_oci_gets_kserves_modelcar_and_a_shared_process_namespace(
    tmp_path: Path, helm_bin: Path
) -> None:
    docs = render(sets=["model.storageUri=oci://registry.example/models/m:v1"])
    plan = plan_pod(docs, tmp_path).check()
    assert [c.name for c in plan.containers] == ["kserve-container", "redis", "modelcar"]
    assert [c.name for c in plan.init_containers] == ["modelcar-init"]
    assert "pid,ipc,net,uts" in plan.pod_args
    car = plan.container("modelcar")
    # KServe writes $$$$ into the spec; the kubelet's expansion hands `$$` (the shell's pid) on.
    assert car.args == ["sh", "-c", "ln -sf /proc/$$/root/models /mnt/models && sleep infinity"]
    assert car.image == "registry.example/models/m:v1"
    assert flag_values(car, "--user") == ["10001:10001"]  # the pod's user: no own context
    assert '"$(ls -A /models)"' in plan.container("modelcar-init").args[2]
    main = plan.container("kserve-container")
    assert main.env["MODEL_INIT_MODE"] == "async"
    shared = str(plan.volumes["kserve-provision-location"].host)
    assert (shared, "/mnt", False) in iter_mounts(main)
    assert (shared, "/mnt", False) in iter_mounts(car)


def test_pvc_mounts_the_claims_sub_path_read_only(tmp_path: Path, helm_bin: Path) -> None:
    docs = render(sets=["model.storageUri=pvc://models/sentiment/v3"])
    plan = plan_pod(docs, tmp_path, claims={"models": tmp_path / "claim"}).check()
    main = plan.container("kserve-container")
    assert (str(tmp_path / "claim" / "sentiment" / "v3"), "/mnt/models", True) in iter_mounts(main)
    with pytest.raises(PlanError, match="claim 'models'"):
        plan_pod(docs, tmp_path)


def with_pod_change(docs: list[Doc], change: dict[str, Any], container: bool = False) -> list[Doc]:
    isvc = next(d for d in docs if d["kind"] == "InferenceService")
    target = isvc["spec"]["predictor"]
    (target["containers"][0] if container else target).update(change)
    return docs


@pytest.mark.parametrize(
    ("change", "container", "path"),
    [
        ({"hostNetwork": True}, False, "hostNetwork"),
        ({"dnsPolicy": "None"}, False, "dnsPolicy"),
        ({"stdin": True}, True, "containers[kserve-container].stdin"),
        (
            {"securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "procMount": "Unmasked"}},
            True,
            "containers[kserve-container].securityContext.procMount",
        ),
    ],
)
def test_a_field_the_harness_cannot_honour_fails_the_run(
    change: dict[str, Any], container: bool, path: str, tmp_path: Path, helm_bin: Path
) -> None:
    docs = with_pod_change(render(), change, container)
    plan = plan_pod(docs, tmp_path, claims={"sentiment-models": tmp_path})
    assert path in plan.not_allowed()
    with pytest.raises(UnhonouredFields, match=path.replace("[", r"\[").replace("]", r"\]")):
        plan.check()


def test_a_missing_secret_fails_the_plan(tmp_path: Path, helm_bin: Path) -> None:
    docs = render([CHART / "ci" / "existing-secret-values.yaml"])
    with pytest.raises(PlanError, match="sentiment-redis-auth"):
        plan_pod(docs, tmp_path, claims={"sentiment-models": tmp_path})


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("$(A)/x", "1/x"),
        ("$$(A)", "$(A)"),
        ("$$$$", "$$"),
        ("$(cat /run/secrets/redis/password)", "$(cat /run/secrets/redis/password)"),
        ("$(UNSET)", "$(UNSET)"),
        ("a $(A", "a $(A"),
        ("$x $", "$x $"),
    ],
)
def test_dollar_expansion_is_the_kubelets(text: str, expanded: str) -> None:
    assert expand(text, {"A": "1"}) == expanded
