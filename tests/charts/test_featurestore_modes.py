"""featureStore.mode: sidecar | external, rendered. Each ci/featurestore-*-values.yaml is also
linted, validated (kubernetes-validate, the CRD schemas) and checked by checkov with every
other ci/ file (test_chart.py, test_checkov.py)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charts import chart_tools as ct

CANARY = "Canary-pw-9b2f61d0"


def ci(name: str) -> Path:
    return ct.CHART / "ci" / name


def pod(docs: list[ct.Doc]) -> dict[str, Any]:
    return ct.one(docs, "InferenceService")["spec"]["predictor"]


def main_env(docs: list[ct.Doc]) -> dict[str, Any]:
    return ct.env_of(ct.container(pod(docs), "kserve-container"))


def egress_ports(docs: list[ct.Doc]) -> list[list[int]]:
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy" and "predictor" in str(d))
    return [[p["port"] for p in rule.get("ports", [])] for rule in policy["spec"]["egress"]]


def notes(*sets: str, values: Path | None = None) -> str:
    extra = ["-f", str(values)] if values else []
    args = [a for s in sets for a in ("--set", s)]
    result = ct.helm(
        "install", "sentiment", str(ct.CHART), "--dry-run=client", "-n", "sentiment",
        *extra, *args,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.split("NOTES:", 1)[1]


def test_sidecar_reads_the_password_from_files_only() -> None:
    docs = ct.render(sets=[f"redis.auth.password={CANARY}"])
    spec = pod(docs)
    assert [c["name"] for c in spec["containers"]] == ["kserve-container", "redis"]
    assert main_env(docs)["PREDICTOR_REDIS_URL"] == "redis://127.0.0.1:6379/0"
    # no container takes a secret through env; the password is only in the Secret object
    for c in spec["containers"]:
        assert "secretKeyRef" not in str(c.get("env", [])), c["name"]
    others = [d for d in docs if d["kind"] != "Secret"]
    assert CANARY not in yaml.safe_dump_all(others)
    secret = ct.one(docs, "Secret")
    assert base64.b64decode(secret["data"]["redis-password"]).decode() == CANARY
    files = next(v for v in spec["volumes"] if v["name"] == "featurestore-secrets")["secret"]
    assert files["items"] == [{"key": "redis-password", "path": "PREDICTOR_REDIS_PASSWORD"}]
    conf = ct.one(docs, "ConfigMap")["data"]["redis.conf"]
    assert "include /run/redis-auth/auth.conf" in conf
    auth = next(v for v in spec["volumes"] if v["name"] == "redis-auth")
    assert auth["emptyDir"]["medium"] == "Memory", "the include file never touches a disk"
    assert egress_ports(docs) == [[53, 53]], "sidecar: DNS only, Redis is on loopback"


@pytest.mark.parametrize(
    ("values", "url", "ports"),
    [
        (
            "featurestore-standalone-values.yaml",
            "rediss://redis-master.redis.svc.cluster.local:6379/1",
            [6379],
        ),
        (
            "featurestore-sentinel-values.yaml",
            "redis+sentinel://redis-node-0.redis-headless.redis.svc.cluster.local:26379,"
            "redis-node-1.redis-headless.redis.svc.cluster.local:26379,"
            "redis-node-2.redis-headless.redis.svc.cluster.local:26379/mymaster/0",
            [26379, 6379],
        ),
        (
            "featurestore-cluster-values.yaml",
            "redis+cluster://redis-cluster-0.redis-cluster-headless.redis.svc.cluster.local:6379,"
            "redis-cluster-1.redis-cluster-headless.redis.svc.cluster.local:6379,"
            "redis-cluster-2.redis-cluster-headless.redis.svc.cluster.local:6379",
            [6379],
        ),
    ],
)
def test_external_modes_point_every_replica_at_one_redis(
    values: str, url: str, ports: list[int]
) -> None:
    docs = ct.render([ci(values)], sets=[f"redis.auth.password={CANARY}"])
    spec = pod(docs)
    assert [c["name"] for c in spec["containers"]] == ["kserve-container"], "no sidecar"
    assert ct.by_kind(docs, "ConfigMap") == [] and ct.by_kind(docs, "Secret") == []
    env = main_env(docs)
    assert env["PREDICTOR_REDIS_URL"] == url
    assert "@" not in url and "secretKeyRef" not in str(env)
    # the chart never holds the external password: only the Secret's name and key
    assert CANARY not in yaml.safe_dump_all(docs)
    mounts = ct.container(spec, "kserve-container")["volumeMounts"]
    assert {"name": "featurestore-secrets", "mountPath": "/var/run/secrets/predictor",
            "readOnly": True} in mounts  # fmt: skip
    assert egress_ports(docs)[1] == ports, "egress to the Redis deployment on its ports only"


def test_tls_mounts_the_ca_and_the_sentinel_password_is_a_second_file() -> None:
    docs = ct.render([ci("featurestore-standalone-values.yaml")])
    env = main_env(docs)
    assert env["PREDICTOR_REDIS_TLS"] == "true"
    assert env["PREDICTOR_REDIS_TLS_CA_FILE"] == "/var/run/secrets/predictor-redis-ca/ca.crt"
    ca = next(v for v in pod(docs)["volumes"] if v["name"] == "featurestore-ca")["secret"]
    assert ca["secretName"] == "redis-ca" and ca["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy" and "predictor" in str(d))
    assert policy["spec"]["egress"][1]["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "redis"}}}
    ]
    sentinel = ct.render([ci("featurestore-sentinel-values.yaml")])
    files = next(v for v in pod(sentinel)["volumes"] if v["name"] == "featurestore-secrets")
    assert files["secret"]["items"] == [
        {"key": "redis-password", "path": "PREDICTOR_REDIS_PASSWORD"},
        {"key": "sentinel-password", "path": "PREDICTOR_REDIS_SENTINEL_PASSWORD"},
    ]


def test_external_redis_without_a_password_mounts_nothing() -> None:
    docs = ct.render(
        sets=["featureStore.mode=external", "featureStore.external.standalone.host=redis"]
    )
    assert main_env(docs)["PREDICTOR_REDIS_URL"] == "redis://redis:6379/0"
    assert [v["name"] for v in pod(docs)["volumes"]] == ["tmp"]


def test_notes_warn_about_a_sidecar_behind_more_than_one_replica() -> None:
    warning = "WARNING: featureStore.mode is sidecar"
    assert warning in notes("autoscaling.maxReplicas=4")
    assert warning in notes("autoscaling.minReplicas=2", "autoscaling.maxReplicas=2")
    assert warning not in notes("autoscaling.minReplicas=1", "autoscaling.maxReplicas=1")
    external = notes(values=ci("featurestore-cluster-values.yaml"))
    assert warning not in external
    assert "Feature store: external cluster Redis at redis+cluster://" in external


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["featureStore.mode=external"], "needs featureStore.external.standalone.host"),
        (
            ["featureStore.mode=external", "featureStore.external.clientType=sentinel"],
            "needs featureStore.external.sentinel.hosts",
        ),
        (
            ["featureStore.mode=external", "featureStore.external.clientType=cluster"],
            "needs featureStore.external.cluster.nodes",
        ),
        (
            ["featureStore.mode=external", "featureStore.external.standalone.host=r",
             "featureStore.external.tls.caSecret=ca"],
            "tls.enabled is false",
        ),
        (
            ["featureStore.mode=external", "featureStore.external.standalone.host=r",
             "featureStore.external.sentinel.existingSecretPasswordKey=k"],
            "auth.existingSecret, which is empty",
        ),
    ],
)  # fmt: skip
def test_incomplete_external_values_are_refused(sets: list[str], message: str) -> None:
    result = ct.template_text(sets=sets)
    assert result.returncode != 0 and message in result.stderr, result.stderr


@pytest.mark.parametrize(
    "sets",
    [
        ["featureStore.mode=shared"],
        ["featureStore.external.clientType=replicated"],
        ["featureStore.external.cluster.nodes={redis-0}"],  # no port
        ["redis.enabled=false"],  # the old switch is gone: featureStore.mode replaces it
    ],
)
def test_schema_refuses_unknown_modes_and_bare_hosts(sets: list[str]) -> None:
    result = ct.template_text(sets=sets)
    assert result.returncode != 0 and "schema" in result.stderr, result.stderr
