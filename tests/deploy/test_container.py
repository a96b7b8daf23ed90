"""Build the runtime image for real and prove it serves a model it does not contain (slow).

buildah builds the Dockerfile's default target, the runtime without a model (chroot isolation,
vfs storage) on a Debian bookworm base made by debootstrap. The model is a modelcar built by
`mlops.publish` (the tiny test model under /models of a busybox image). podman runs the runtime
the way the chart runs the pod: numeric user 10001, read-only root filesystem with a tmpfs /tmp,
no capabilities, no privilege escalation, and the modelcar's files mounted as an image
(`--mount type=image`), as KServe shares a modelcar's /models with kserve-container. Then the
v1 and v2 REST endpoints are called and the container is stopped with SIGTERM, which must drain
and exit 0. The same image with nothing mounted must refuse to turn ready and say why.

Run: `make container-test` (or `pytest -m slow tests/deploy/test_container.py -s`); with
CONTAINER_TEST_IMAGE=<image> it runs that already-built image instead of building. Needs root
(apt-get, debootstrap, rootful buildah/podman); 15-30 minutes cold on 2 cores, several GB of disk.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.kubelet import ULIMITS as POD_ULIMITS
from harness.process import free_port
from tests.deploy.conftest import PODMAN, post

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

# podman's default rlimits are above what this sandbox lets runc set: the harness's, which fit.
ULIMITS = [a for limit in POD_ULIMITS for a in ("--ulimit", limit)]


@pytest.fixture(scope="module")
def image(runtime_image: str) -> str:
    return runtime_image


@pytest.fixture(scope="module")
def modelcar(tiny_model_dir: Path) -> Iterator[str]:
    """The tiny model as a modelcar in local storage (no registry needed for podman)."""
    from mlops.publish import publish
    from tests.fixtures.object_store import remove_local_images

    started = time.monotonic()
    uri = publish(tiny_model_dir, "oci://localhost/sentiment-models/tiny", push=False)
    print(f"\nmodelcar {uri} built in {time.monotonic() - started:.1f} s")
    yield uri.removeprefix("oci://")
    remove_local_images("localhost/sentiment-models/")


def _podman_run(image: str, *mounts: str, env: tuple[str, ...] = ()) -> tuple[str, str]:
    http, grpc = free_port(), free_port()
    run = subprocess.run(
        [
            *PODMAN, "run", "-d", "--network", "host", *ULIMITS,
            "--user", "10001:10001", "--read-only", "--tmpfs", "/tmp:rw,size=64m",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "-e", "PREDICTOR_CPU_THREADS=1", "-e", "PREDICTOR_DRAIN_TIMEOUT_S=10",
            *(a for e in env for a in ("-e", e)), *mounts,
            image, "--model_name", "sentiment",
            "--http_port", str(http), "--grpc_port", str(grpc),
        ],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return run.stdout.strip(), f"http://127.0.0.1:{http}"


@pytest.fixture(scope="module")
def container(image: str, modelcar: str) -> Iterator[tuple[str, str]]:
    """The runtime in podman on free loopback ports, the modelcar mounted: (id, base URL).

    KServe links /mnt/models to the modelcar's /models; podman 4.3 mounts an image's root only
    (no subpath), so the modelcar root goes to /mnt/modelcar and PREDICTOR_MODEL_DIR, the
    override the chart also uses, points at its /models."""
    started = time.monotonic()
    cid, base = _podman_run(
        image, "--mount", f"type=image,source={modelcar},destination=/mnt/modelcar",
        env=("PREDICTOR_MODEL_DIR=/mnt/modelcar/models",),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600  # vfs copies the 1.6 GB image for each container
        while True:
            try:
                with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            state = subprocess.run(
                [*PODMAN, "inspect", cid, "--format", "{{.State.Running}}"],
                capture_output=True, text=True,
            ).stdout.strip()  # fmt: skip
            if state != "true" or time.monotonic() > deadline:
                logs = subprocess.run([*PODMAN, "logs", cid], capture_output=True, text=True)
                pytest.fail(f"predictor not ready (running={state}):\n{logs.stdout}{logs.stderr}")
            time.sleep(1)
        print(f"\npodman run to ready: {time.monotonic() - started:.0f} s (vfs copy included)")
        yield cid, base
    finally:
        subprocess.run([*PODMAN, "rm", "-f", "-t", "0", cid], capture_output=True)


def test_v1_predict_inside_the_container(container: tuple[str, str]) -> None:
    _, base = container
    body = {"instances": ["I love this, what a great day!", {"text": "awful, I hate it"}]}
    predictions = post(f"{base}/v1/models/sentiment:predict", body)["predictions"]
    assert len(predictions) == 2
    for p in predictions:
        assert p["label"] in {"negative", "neutral", "positive"}
        assert abs(sum(p["probabilities"].values()) - 1.0) < 1e-3


def test_v2_infer_inside_the_container(container: tuple[str, str]) -> None:
    _, base = container
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["so happy"]}]}
    outputs = {o["name"]: o for o in post(f"{base}/v2/models/sentiment/infer", body)["outputs"]}
    assert outputs["label"]["data"][0] in {"negative", "neutral", "positive"}
    assert outputs["probabilities"]["shape"] == [1, 3]


def test_runs_as_the_numeric_user_with_metrics(container: tuple[str, str]) -> None:
    cid, base = container
    uid = subprocess.run(
        [*PODMAN, "exec", cid, "python", "-c", "import os; print(os.getuid(), os.getgid())"],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert uid == ["10001", "10001"]
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
        assert b"predictor_requests_total" in resp.read()


def test_sigterm_drains_and_exits_zero(container: tuple[str, str]) -> None:
    cid, _ = container
    started = time.monotonic()
    subprocess.run([*PODMAN, "stop", "-t", "30", cid], check=True, capture_output=True)
    code = subprocess.run(
        [*PODMAN, "inspect", cid, "--format", "{{.State.ExitCode}}"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    assert code == "0", f"exit code {code} after SIGTERM"
    assert time.monotonic() - started < 30, "the predictor needed SIGKILL"


def test_without_a_model_it_never_turns_ready_and_says_why(image: str) -> None:
    """The runtime alone, /mnt/models empty (a storage initializer that fetched nothing)."""
    cid, _ = _podman_run(image, "--tmpfs", "/mnt/models:rw,size=1m")
    try:
        code = subprocess.run(
            [*PODMAN, "wait", cid], check=True, capture_output=True, text=True, timeout=900
        ).stdout.strip()
        logs = subprocess.run([*PODMAN, "logs", cid], capture_output=True, text=True)
        assert code == "1", logs.stdout + logs.stderr
        text = logs.stdout + logs.stderr
        assert "model failed to load" in text and "/mnt/models lacks model.pt" in text
    finally:
        subprocess.run([*PODMAN, "rm", "-f", "-t", "0", cid], capture_output=True)
