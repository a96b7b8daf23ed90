"""The feature store on a real three-master Redis Cluster: one round trip per node for a
batch, a user's history on one slot, a dead node answered by the model, and its return."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis
from pydantic import SecretStr
from redis.crc import key_slot

from harness.inprocess import InProcessPredictor
from harness.redis_deployments import ClusterDeployment
from harness.scrape import sample_sum
from predictor.featurestore import keys
from predictor.featurestore.history import Authored, UserHistory
from predictor.featurestore.predictions import PredictionCache
from predictor.featurestore.settings import FeatureStoreSettings
from predictor.featurestore.store import FeatureStore
from predictor.prediction import Prediction

ON_SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")  # the fixture's loop

P = Prediction("positive", 0.75, {"negative": 0.05, "neutral": 0.2, "positive": 0.75})
PREFIX = "tss:"


@pytest.fixture
async def store(cluster_deployment: ClusterDeployment) -> AsyncIterator[FeatureStore]:
    settings = FeatureStoreSettings(
        redis_url=SecretStr(cluster_deployment.url()),
        key_prefix=PREFIX,
        near_cache_entries=0,  # watch the cluster itself
        health_interval_s=3600,  # no PING in the middle of a count
    )
    fs = FeatureStore(settings)
    await fs.start()
    yield fs
    await fs.close()


class NodeCounters:
    """Read events and per-command calls on every node, from one connection each, so the
    measurement itself costs exactly one read event per INFO."""

    def __init__(self, cluster: ClusterDeployment) -> None:
        self.clients = {n.port: n.client() for n in cluster.nodes}
        for c in self.clients.values():
            c.ping()  # connect now, not inside a measurement

    def snapshot(self) -> dict[int, tuple[int, dict[str, int]]]:
        out = {}
        for port, c in self.clients.items():
            reads = int(c.info("stats")["total_reads_processed"])
            calls = {k: int(v["calls"]) for k, v in c.info("commandstats").items()}
            out[port] = (reads, calls)
        return out

    def delta(
        self, before: dict[int, tuple[int, dict[str, int]]]
    ) -> dict[int, tuple[int, dict[str, int]]]:
        after = self.snapshot()
        out = {}
        for port, (reads, calls) in after.items():
            r0, c0 = before[port]
            # 2 INFO commands after the first snapshot's stats read: one in `before`
            # (commandstats) and the stats read of `after`
            diff = {k: v - c0.get(k, 0) for k, v in calls.items() if v - c0.get(k, 0)}
            diff.pop("cmdstat_info", None)
            out[port] = (reads - r0 - 2, diff)
        return out


def owner(cluster: ClusterDeployment, key: str) -> int:
    """Port of the master serving `key`'s slot, as the cluster itself says."""
    client = cluster.nodes[0].client()
    slot = key_slot(key.encode())
    for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return int(master[1])
    raise AssertionError(f"slot {slot} has no owner")


@ON_SESSION_LOOP
async def test_a_batch_is_one_round_trip_per_node(
    store: FeatureStore, cluster_deployment: ClusterDeployment
) -> None:
    cache = PredictionCache(store, "m-cluster")
    texts = [f"spread over slots {n}" for n in range(48)]
    cache.remember("v", "fp32", [(t, P) for t in texts])
    await store.writer.join()
    assert await cache.lookup("v", "fp32", texts) == [P] * 48  # warm every node's connection
    full = [PREFIX + keys.prediction_key("m-cluster", "v", "fp32", t) for t in texts]
    slots_per_node: dict[int, set[int]] = {}
    for k in full:
        slots_per_node.setdefault(owner(cluster_deployment, k), set()).add(key_slot(k.encode()))
    assert len(slots_per_node) == 3, "48 keys should land on every master"

    counters = NodeCounters(cluster_deployment)
    before = counters.snapshot()
    assert await cache.lookup("v", "fp32", texts) == [P] * 48
    delta = counters.delta(before)
    for port, (reads, calls) in delta.items():
        assert reads == 1, f"node {port}: {reads} round trips for one batched lookup"
        # one MGET per slot, pipelined; never one GET per key
        assert calls == {"cmdstat_mget": len(slots_per_node[port])}, (port, calls)


@ON_SESSION_LOOP
async def test_a_users_history_is_one_slot_and_one_call(
    store: FeatureStore, cluster_deployment: ClusterDeployment
) -> None:
    history = UserHistory(store, "m-cluster")
    history.record("v", [Authored("Erin", str(n), 100.0 + n, P) for n in range(5)])
    await store.writer.join()
    assert [e.tweet_id for e in await history.read("erin")] == ["0", "1", "2", "3", "4"]
    counters = NodeCounters(cluster_deployment)
    before = counters.snapshot()
    assert len(await history.read("ERIN")) == 5
    touched = {p: c for p, (_, c) in counters.delta(before).items() if c}
    key = PREFIX + keys.history_key("erin")
    assert touched == {owner(cluster_deployment, key): {"cmdstat_lrange": 1}}


def test_a_dead_node_is_answered_by_the_model_and_its_return_brings_hits_back(
    cluster_deployment: ClusterDeployment, tiny_model_dir: Path, tmp_path: Path
) -> None:
    env = {
        "PREDICTOR_REDIS_URL": cluster_deployment.url(),
        "PREDICTOR_NEAR_CACHE_ENTRIES": "0",
        "PREDICTOR_BREAKER_FAILURES": "2",
        "PREDICTOR_BREAKER_RESET_S": "0.3",
        "PREDICTOR_HEALTH_INTERVAL_S": "0.3",
    }
    proc = InProcessPredictor(tiny_model_dir, tmp_path / "predictor.log", env=env)
    url = f"{proc.url}/v1/models/sentiment:predict"

    def hits() -> float:
        return sample_sum(proc.url, "predictor_cache_lookups_total", result="hit")

    def errors() -> float:
        return sample_sum(proc.url, "predictor_cache_lookups_total", result="error")

    try:
        proc.start().wait_ready()
        victim = cluster_deployment.nodes[1]
        texts = [f"node return {n}" for n in range(30)]  # spread over all three nodes
        for t in texts:
            assert httpx.post(url, json={"instances": [t]}, timeout=30).status_code == 200
        deadline = time.monotonic() + 10
        while sum(n.client().dbsize() for n in cluster_deployment.nodes) < len(texts):
            assert time.monotonic() < deadline, "write-behind never reached the cluster"
            time.sleep(0.05)
        h0 = hits()
        for t in texts:
            assert httpx.post(url, json={"instances": [t]}, timeout=30).status_code == 200
        assert hits() - h0 == len(texts), "every text is a hit from the cluster"

        victim.kill()
        e0 = errors()
        statuses = [
            httpx.post(url, json={"instances": texts[:8]}, timeout=30).status_code
            for _ in range(10)
        ]
        assert statuses == [200] * 10, "a dead node costs the cache, never a request"
        assert errors() - e0 > 0, "the failed lookups are counted as result=error"

        victim.start()
        deadline = time.monotonic() + 30
        while True:  # the node is back (empty) and owns its slots again
            try:
                if cluster_deployment.healthy():
                    break
            except redis.RedisError:
                pass
            assert time.monotonic() < deadline, "the cluster never healed"
            time.sleep(0.1)
        deadline = time.monotonic() + 20
        while True:
            h = hits()
            assert httpx.post(url, json={"instances": texts[:8]}, timeout=30).status_code == 200
            if hits() > h:
                break
            assert time.monotonic() < deadline, f"hits never resumed:\n{proc.logs()[-3000:]}"
            time.sleep(0.2)
    finally:
        proc.stop()
