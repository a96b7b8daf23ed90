"""The deploy tests reuse the chart fixtures (helm from .tools, the shared CRD schemas) and share
one build of the runtime image between the slow container and pod tests."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from typing import Any

import pytest

from tests.charts.chart_tools import REPO
from tests.charts.conftest import helm_bin, shared_crds

__all__ = ["helm_bin", "post", "runtime_image", "shared_crds"]

IMAGE = "localhost/sentiment-predictor:test"
BASE = "localhost/sentiment-base:bookworm"
PODMAN = ["podman", "--storage-driver", "vfs", "--runtime", "runc"]


@pytest.fixture(scope="session")
def runtime_image() -> str:
    """The Dockerfile's runtime built by buildah on the debootstrap base, once per session;
    CONTAINER_TEST_IMAGE=<image> runs an image already built by scripts/build-image.sh."""
    if os.geteuid() != 0:
        pytest.fail("the container build needs root (apt-get, debootstrap, rootful buildah)")
    prebuilt = os.environ.get("CONTAINER_TEST_IMAGE")
    if prebuilt:
        return prebuilt
    subprocess.run([str(REPO / "scripts" / "make-base-image.sh"), BASE], check=True)
    started = time.monotonic()
    subprocess.run([str(REPO / "scripts" / "build-image.sh"), IMAGE, BASE], check=True)
    size = subprocess.run(
        [*PODMAN, "image", "inspect", IMAGE, "--format", "{{.Size}}"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    print(f"\nbuilt {IMAGE} in {time.monotonic() - started:.0f} s, {int(size) / 1e9:.2f} GB")
    return IMAGE


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST JSON, return the JSON answer (raises on a non-2xx status)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        result: dict[str, Any] = json.load(resp)
        return result
