"""The chart's own predictor pod, from `helm template`, run under podman as a kubelet would.

Slow (an image build and six pods). Each case renders the chart for one set of values, turns
the InferenceService's predictor pod into a podman pod with `harness.podspec` (KServe's
additions for the storageUri included) and runs it with `harness.kubelet`: the rendered probes
decide readiness, traffic goes to the pod IP only once ready, and stop is preStop, SIGTERM and
SIGKILL at the grace deadline. Every case checks: ready within the probe budget, v1 and v2
answer, a second identical request is a cache hit and its key is in the pod's Redis, the
feature store still answers inside the preStop window (the pod is meant to serve normally
there), and SIGTERM drains inside the grace period with exit 0 and no SIGKILL.

What is not the rendered chart, and why: the image references. No registry is reachable here,
so the render is given `image.*` = the runtime image built from the Dockerfile and `redis.image.*`
= a stand-in built from Debian's redis-server 7.0 (the chart's redis:8.2-alpine cannot be
pulled); both are chart values, so the pod runs exactly the image the render names.

Run: `make container-test`. Needs root (rootful podman, tmpfs mounts), several GB of disk.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from harness.kubelet import PodFailed, PodRun, Restart, Termination
from harness.podspec import plan_pod
from harness.scrape import sample_sum
from harness.servers import RedisServer
from mlops.publish import publish
from predictor.featurestore.keys import prediction_key
from predictor.featurestore.settings import FeatureStoreSettings
from tests.charts.chart_tools import CHART, Doc, render
from tests.deploy.conftest import PODMAN, post
from tests.fixtures.object_store import ACCESS_KEY, REGION, SECRET_KEY, S3Server, s3_server
from tests.mlops.conftest import with_card

__all__ = ["s3_server"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

REDIS_IMAGE = "localhost/sentiment-redis:7.0.15-debian"
BUCKET = "pod-models"
KEY_PREFIX = FeatureStoreSettings.model_fields["key_prefix"].default


def get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        result: dict[str, Any] = json.load(resp)
        return result


# --- images and stores ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Redis image from this machine's redis-server and redis-cli, their libraries and
    busybox (sh, cat, printf, grep: what the chart's command and probes call). Built once per
    machine: the host's binaries are what it holds."""
    buildah = ["buildah", "--storage-driver", "vfs"]
    found = subprocess.run(
        [*buildah, "inspect", "--type", "image", REDIS_IMAGE], capture_output=True
    )
    if found.returncode == 0:
        return REDIS_IMAGE
    root = tmp_path_factory.mktemp("redis-image")
    (root / "bin").mkdir()
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "cat", "printf", "grep"):
        (root / "bin" / applet).symlink_to("busybox")
    libs: set[str] = set()
    (root / "usr" / "bin").mkdir(parents=True)
    for name in ("redis-server", "redis-cli"):
        src = Path(f"/usr/bin/{name}").resolve()  # Debian's redis-server links to redis-check-rdb
        shutil.copy2(src, root / "usr" / "bin" / name)
        ldd = subprocess.run(["ldd", str(src)], check=True, capture_output=True, text=True)
        libs |= {w for w in ldd.stdout.split() if w.startswith("/")}
    for lib in libs:
        dest = root / lib.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib, dest)  # follows the soname links to the real file
    ctr = subprocess.run([*buildah, "from", "scratch"], check=True, capture_output=True, text=True)
    cid = ctr.stdout.strip()
    subprocess.run([*buildah, "copy", cid, f"{root}/", "/"], check=True, capture_output=True)
    subprocess.run(
        [*buildah, "config", "--env", "PATH=/usr/bin:/bin", "--cmd", "redis-server", cid],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run([*buildah, "commit", "--rm", cid, REDIS_IMAGE], check=True, capture_output=True)
    return REDIS_IMAGE


@pytest.fixture(scope="session")
def image_sets(runtime_image: str, redis_image: str) -> list[str]:
    repo, _, tag = runtime_image.rpartition(":")
    redis_repo, _, redis_tag = redis_image.rpartition(":")
    return [
        f"image.repository={repo}", f"image.tag={tag}",
        f"redis.image.repository={redis_repo}", f"redis.image.tag={redis_tag}",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def s3_models(
    s3_server: S3Server, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The tiny model and a candidate of another version, published to the S3-API server."""
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint, **_aws())
    s3.create_bucket(Bucket=BUCKET)
    candidate = with_card(
        tiny_model_dir, tmp_path_factory.mktemp("candidate") / "m", version="20261203-c0ffee01"
    )
    with pytest.MonkeyPatch.context() as mp:
        for key, value in s3_server.env.items():
            mp.setenv(key, value)
        return {
            "stable": publish(tiny_model_dir, f"s3://{BUCKET}/sentiment"),
            "candidate": publish(candidate, f"s3://{BUCKET}/sentiment"),
        }


def _aws() -> dict[str, str]:
    return {
        "aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY,
        "region_name": REGION,
    }  # fmt: skip


def s3_secret(s3_server: S3Server) -> Doc:
    """The storage Secret an operator attaches through model.storageSecretName (KServe's
    documented S3 annotations), pointing the storage initializer at the S3-API server."""
    return {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "model-store", "annotations": {
            "serving.kserve.io/s3-endpoint": s3_server.endpoint.removeprefix("http://"),
            "serving.kserve.io/s3-usehttps": "0",
            "serving.kserve.io/s3-region": REGION,
        }},
        "stringData": {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
    }  # fmt: skip


@pytest.fixture(scope="module")
def modelcar(tiny_model_dir: Path) -> Iterator[str]:
    from tests.fixtures.object_store import remove_local_images

    yield publish(tiny_model_dir, "oci://localhost/sentiment-models/pod", push=False)
    remove_local_images("localhost/sentiment-models/pod")


@pytest.fixture(scope="module")
def claim(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default values' PVC `sentiment-models`, holding the model directory at sentiment/."""
    root = tmp_path_factory.mktemp("claim")
    shutil.copytree(tiny_model_dir, root / "sentiment")
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def bridge_gateway() -> str:
    """The host's address on podman's bridge: what a pod reaches an outside Redis on."""
    out = subprocess.run(
        [*PODMAN, "network", "inspect", "podman", "--format",
         "{{range .Subnets}}{{.Gateway}}{{end}}"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout.strip()


# --- one pod, every check -----------------------------------------------------------------------


def sidecar_has(pod: PodRun) -> Callable[[str], bool]:
    """EXISTS in the pod's Redis sidecar, authenticated with the mounted password file."""

    def has(key: str) -> bool:
        script = 'REDISCLI_AUTH="$(cat /run/secrets/redis/password)" exec redis-cli EXISTS "$1"'
        out = pod.exec("redis", ["sh", "-c", script, "sh", key])
        return out.stdout.strip() == "1"

    return has


def the_key(base: str, text: str) -> str:
    """The cache key the predictor writes for `text`, from what it says it loaded."""
    version = get(f"{base}/v2/models/sentiment")["versions"][0]
    metrics = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()
    line = next(x for x in metrics.splitlines() if x.startswith("predictor_model_info{"))
    precision = line.split('precision="')[1].split('"')[0]
    return KEY_PREFIX + prediction_key("sentiment", version, precision, text)


def no_restart(_: Restart) -> bool:
    return False


def serve_and_cache(
    pod: PodRun,
    has: Callable[[str], bool],
    text: str,
    excused: Callable[[Restart], bool] = no_restart,
) -> str:
    """Ready within the probe budget with no restart (or only those `excused` says), v1 and v2
    answer, the second identical request is a cache hit and the key is in the pod's Redis.
    Returns the base URL."""
    ready_s = pod.wait_ready()
    budget = pod.ready_budget()
    print(f"\n{pod.plan.name}: ready {ready_s:.1f} s after start (budget {budget:.0f} s)")
    for restart in pod.restarts:
        print(f"{pod.plan.name}: restarted {restart}:\n{restart.log_tail[-1500:]}")
    assert not [r for r in pod.restarts if not excused(r)], pod.restarts
    base = pod.url(pod.plan.container("kserve-container").ports["http1"])
    first = post(f"{base}/v1/models/sentiment:predict", {"instances": [text]})["predictions"]
    assert first[0]["label"] in first[0]["probabilities"]
    v2 = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["so happy"]}]}
    outputs = {o["name"]: o for o in post(f"{base}/v2/models/sentiment/infer", v2)["outputs"]}
    assert outputs["probabilities"]["shape"] == [1, 3]
    key = the_key(base, text)
    deadline = time.monotonic() + 10
    while not has(key):  # write-behind: shortly after the answer
        assert time.monotonic() < deadline, f"{key} never reached the pod's Redis"
        time.sleep(0.2)
    hits = sample_sum(base, "predictor_cache_lookups_total", result="hit")
    again = post(f"{base}/v1/models/sentiment:predict", {"instances": [text]})["predictions"]
    assert again == first
    assert sample_sum(base, "predictor_cache_lookups_total", result="hit") == hits + 1
    return base


def stop_and_drain(pod: PodRun, base: str) -> dict[str, Termination]:
    """Stop the pod; inside the preStop window (before SIGTERM) a request still gets an answer
    and the feature store still answers it. Then every container exits on SIGTERM in time."""
    main = pod.plan.container("kserve-container")
    window = float(main.pre_stop.target[0]) if main.pre_stop else 0.0
    errors = sample_sum(base, "predictor_cache_lookups_total", result="error")
    result: dict[str, dict[str, Termination]] = {}
    stopper = threading.Thread(target=lambda: result.setdefault("t", pod.stop()))
    started = time.monotonic()
    stopper.start()
    try:
        if window >= 2:
            time.sleep(window / 2)
            body = {"instances": ["inside preStop"]}
            assert post(f"{base}/v1/models/sentiment:predict", body)["predictions"][0]["label"]
            lost = sample_sum(base, "predictor_cache_lookups_total", result="error") - errors
            assert lost == 0, f"{lost} feature-store lookups failed inside the preStop window"
    finally:
        stopper.join()
    took = time.monotonic() - started
    ends = result["t"]
    print(f"{pod.plan.name}: stopped in {took:.1f} s: {ends}")
    assert not [n for n, t in ends.items() if t.killed], f"SIGKILL needed: {ends}"
    assert took < pod.plan.grace_seconds
    assert ends["kserve-container"].exit_code == 0, pod.logs("kserve-container")
    if "redis" in ends:
        assert ends["redis"].exit_code == 0, pod.logs("redis")
    return ends


def start_pod(docs: list[Doc], name: str, tmp: Path, **kwargs: Any) -> PodRun:
    plan = plan_pod(docs, tmp / name, name=name, **kwargs).check()
    print(f"\n{name}: unhonoured (allowed): {plan.unhonoured}")
    return PodRun(plan, tmp / name)


# --- the cases ----------------------------------------------------------------------------------


def test_default_values_sidecar_redis_password_file(
    image_sets: list[str], claim: Path, tmp_path: Path
) -> None:
    docs = render([], image_sets)
    with start_pod(docs, "default", tmp_path, claims={"sentiment-models": claim}) as pod:
        base = serve_and_cache(pod, sidecar_has(pod), "what a lovely day")
        stop_and_drain(pod, base)


def test_external_redis(image_sets: list[str], claim: Path, tmp_path: Path) -> None:
    password = "external-redis-secret"
    server = RedisServer(tmp_path / "redis", password=password, args=["--bind", "0.0.0.0"])
    (tmp_path / "redis").mkdir()
    server.start()
    try:
        sets = [
            *image_sets, "featureStore.mode=external",
            f"featureStore.external.standalone.host={bridge_gateway()}",
            f"featureStore.external.standalone.port={server.port}",
            "featureStore.external.auth.existingSecret=shared-redis",
        ]  # fmt: skip
        secret = {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shared-redis"},
            "stringData": {"redis-password": password},
        }  # fmt: skip
        docs = render([], sets)
        claims = {"sentiment-models": claim}
        with start_pod(docs, "external", tmp_path, objects=[secret], claims=claims) as pod:
            client = server.client()
            base = serve_and_cache(pod, lambda k: bool(client.exists(k)), "shared cache works")
            stop_and_drain(pod, base)
    finally:
        server.stop()


def test_s3_storage_uri_through_kserve_storage(
    image_sets: list[str], s3_server: S3Server, s3_models: dict[str, str], tmp_path: Path
) -> None:
    sets = [
        *image_sets, f"model.storageUri={s3_models['stable']}",
        "model.storageSecretName=model-store",
    ]  # fmt: skip
    docs = render([CHART / "ci" / "knative-values.yaml"], sets)
    with start_pod(docs, "s3", tmp_path, objects=[s3_secret(s3_server)]) as pod:
        base = serve_and_cache(pod, sidecar_has(pod), "fetched from the object store")
        print(f"s3: storage initializer {pod.storage_seconds:.1f} s")
        stop_and_drain(pod, base)


def test_oci_modelcar(image_sets: list[str], modelcar: str, tmp_path: Path) -> None:
    sets = [*image_sets, f"model.storageUri={modelcar}"]
    docs = render([CHART / "ci" / "standard-hpa-values.yaml"], sets)
    with start_pod(docs, "oci", tmp_path) as pod:
        assert [c.name for c in pod.plan.containers] == ["kserve-container", "redis", "modelcar"]
        # no restart: with KServe's MODEL_INIT_MODE=async the predictor waits for the modelcar's
        # link (it used to exit once and be restarted with back-off when it looked too early)
        base = serve_and_cache(pod, sidecar_has(pod), "served from a modelcar")
        ends = stop_and_drain(pod, base)
        assert ends["modelcar"].exit_code in (0, 143)  # `sleep infinity` ends by SIGTERM


def test_knative_canary_two_pods_side_by_side(
    image_sets: list[str], s3_server: S3Server, s3_models: dict[str, str], tmp_path: Path
) -> None:
    """The previous revision (stable model) and the one this upgrade creates (the candidate),
    each pod from its own render, both serving at once."""
    values = [CHART / "ci" / "knative-canary-values.yaml"]
    common = [*image_sets, "model.storageSecretName=model-store"]
    stable_sets = [*common, f"model.storageUri={s3_models['stable']}", "canary.enabled=false"]
    canary_sets = [
        *common, f"model.storageUri={s3_models['stable']}",
        f"canary.storageUri={s3_models['candidate']}",
    ]  # fmt: skip
    secret = s3_secret(s3_server)
    stable = start_pod(render(values, stable_sets), "stable", tmp_path, objects=[secret])
    canary = start_pod(render(values, canary_sets), "canary", tmp_path, objects=[secret])
    assert stable.plan.storage_uri == s3_models["stable"]
    assert canary.plan.storage_uri == s3_models["candidate"]
    with stable, canary:
        bases = {
            "stable": serve_and_cache(stable, sidecar_has(stable), "one of two revisions"),
            "canary": serve_and_cache(canary, sidecar_has(canary), "one of two revisions"),
        }
        versions = {k: get(f"{b}/v2/models/sentiment")["versions"][0] for k, b in bases.items()}
        assert versions["canary"] == "20261203-c0ffee01" != versions["stable"]
        stop_and_drain(canary, bases["canary"])
        stop_and_drain(stable, bases["stable"])


def test_a_startup_budget_shorter_than_the_start_never_turns_ready(
    image_sets: list[str], claim: Path, tmp_path: Path
) -> None:
    """The check the cases rely on can fail: a 1 s startup budget is shorter than the
    predictor's start, so the kubelet kills it (and would keep restarting it); never ready."""
    sets = [
        *image_sets, "predictor.probes.startup.periodSeconds=1",
        "predictor.probes.startup.failureThreshold=1",
    ]  # fmt: skip
    docs = render([], sets)
    with start_pod(docs, "too-short", tmp_path, claims={"sentiment-models": claim}) as pod:
        with pytest.raises(PodFailed, match="not ready within the probe budget"):
            pod.wait_ready()
        assert pod.kills[0] == ("kserve-container", "startup probe failed 1 times")
        with pytest.raises(PodFailed, match="no traffic"):
            pod.url(8080)
