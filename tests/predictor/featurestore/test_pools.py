"""Lookups beyond the pool size wait for a connection on Sentinel and Cluster (as on a
standalone server) instead of failing at once, and the Cluster health check hears every
master. Real deployments: a master, a replica and three sentinels; three cluster masters."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import SecretStr

from harness.redis_deployments import ClusterDeployment, SentinelDeployment
from predictor.featurestore.backend import BackendError
from predictor.featurestore.redis import RedisBackend
from predictor.featurestore.redis_url import parse_redis_url
from predictor.featurestore.settings import FeatureStoreSettings
from tests.predictor.featurestore.conftest import PASSWORD

POOL = 2
BURST = 40


def backend(url: str, lookup_timeout_s: float = 2.0) -> RedisBackend:
    s = FeatureStoreSettings(
        redis_url=SecretStr(url),
        redis_password=SecretStr(PASSWORD),
        max_connections=POOL,
        lookup_timeout_s=lookup_timeout_s,
    )
    return RedisBackend(parse_redis_url(url), s)


async def assert_a_burst_is_answered(b: RedisBackend) -> None:
    """BURST lookups at once on a pool of POOL connections: every one answered."""
    try:
        await b.set_many({f"pool:{n}": b"v" for n in range(BURST)}, ttl_s=60)
        keys = [[f"pool:{n}", f"pool:{(n + 7) % BURST}"] for n in range(BURST)]
        outcomes = await asyncio.gather(*(b.get_many(k) for k in keys), return_exceptions=True)
    finally:
        await b.close()
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert failed == [], f"{len(failed)} of {BURST} failed, e.g. {failed[:1]}"
    assert all(o == [b"v", b"v"] for o in outcomes)


async def test_a_sentinel_burst_beyond_the_pool_waits_and_is_answered(
    sentinel_deployment: SentinelDeployment,
) -> None:
    await assert_a_burst_is_answered(backend(sentinel_deployment.url(password="")))


async def test_a_cluster_burst_beyond_the_pool_waits_and_is_answered(
    cluster_deployment: ClusterDeployment,
) -> None:
    await assert_a_burst_is_answered(backend(cluster_deployment.url()))


async def test_the_wait_for_a_cluster_connection_is_bounded(
    cluster_deployment: ClusterDeployment,
) -> None:
    """Six commands of 0.8 s each (BLPOP on an empty list) queue for the two turns; a lookup
    behind them would wait 2.4 s, and gives up after its 1 s timeout instead of hanging."""
    b = backend(cluster_deployment.url(), lookup_timeout_s=1.0)
    try:
        holders = [
            asyncio.create_task(b._call(lambda: b._read.blpop(["pool:never"], 0.8)))
            for _ in range(6)
        ]
        await asyncio.sleep(0.1)
        start = time.monotonic()
        with pytest.raises(BackendError, match="no connection free within 1 s"):
            await b.get_many(["pool:x"])
        assert 0.9 <= time.monotonic() - start < 2.0
        await asyncio.gather(*holders, return_exceptions=True)
    finally:
        await b.close()


async def test_the_cluster_health_check_fails_when_any_master_is_down(
    cluster_deployment: ClusterDeployment,
) -> None:
    b = backend(cluster_deployment.url(), lookup_timeout_s=0.3)
    try:
        await b.ping()  # every master answers
        cluster_deployment.nodes[-1].kill()  # not the node the client was given
        with pytest.raises(BackendError):
            await b.ping()
    finally:
        await b.close()
