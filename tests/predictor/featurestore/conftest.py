"""Shared Redis deployments for the feature-store tests: Sentinel and Cluster on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.redis_deployments import (
    CLI_BIN,
    SENTINEL_BIN,
    ClusterDeployment,
    SentinelDeployment,
)
from harness.servers import REDIS_BIN

PASSWORD = "fs-topology-pw"


def _require(*binaries: str) -> None:
    missing = [b for b in binaries if not Path(b).exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (.ci/run installs redis-server, "
                    "redis-sentinel and redis-tools with apt-get)")  # fmt: skip


@pytest.fixture
def sentinel_deployment(tmp_path: Path) -> Iterator[SentinelDeployment]:
    """A fresh master + replica + three sentinels; a test may kill the master."""
    _require(REDIS_BIN, SENTINEL_BIN)
    deployment = SentinelDeployment(tmp_path / "sentinel", password=PASSWORD).start()
    yield deployment
    deployment.stop()


@pytest.fixture
def cluster_deployment(tmp_path: Path) -> Iterator[ClusterDeployment]:
    """A fresh three-master Redis Cluster; a test may kill and restart a node."""
    _require(REDIS_BIN, CLI_BIN)
    deployment = ClusterDeployment(tmp_path / "cluster", password=PASSWORD).start()
    yield deployment
    deployment.stop()
