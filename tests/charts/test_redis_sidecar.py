"""The sidecar's rendered redis.conf, run by a real redis-server: what the chart promises holds.

The container image is not pullable here, so Debian's redis-server (installed by .ci/run) reads
the same file with the same arguments the chart gives the container, only `dir` and `port`
moved to a temporary directory and a free loopback port.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import redis

from harness.process import ServerProcess, free_port
from tests.charts import chart_tools as ct

PASSWORD = "s3cret-Pass.word"


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server not installed (.ci/run installs it with apt-get)")
    ct.fetch_tools()
    docs = ct.render(sets=[f"redis.auth.password={PASSWORD}"])
    tmp = tmp_path_factory.mktemp("redis")
    conf = tmp / "redis.conf"
    text = ct.one(docs, "ConfigMap")["data"]["redis.conf"]
    assert "\ndir /data\n" in text
    conf.write_text(text.replace("\ndir /data\n", f"\ndir {tmp}\n"))
    redis_container = ct.container(ct.one(docs, "InferenceService")["spec"]["predictor"], "redis")
    args = [a.replace("/etc/redis/redis.conf", str(conf)) for a in redis_container["args"]]
    args = [PASSWORD if a == "$(REDIS_PASSWORD)" else a for a in args]
    port = free_port()
    cmd = [server, *args, "--port", str(port), "--daemonize", "no"]
    proc = ServerProcess(cmd, tmp / "redis-server.out").start()
    try:
        ping = redis.Redis(port=port, password=PASSWORD).ping
        try:
            proc.wait_until(ping, 10, errors=(redis.ConnectionError,))
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"redis-server did not start with the chart's config:\n{exc}")
        yield port
    finally:
        proc.stop(timeout=10)


def test_auth_is_required(sidecar: int) -> None:
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=sidecar).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=sidecar, password="wrong").ping()


def test_cache_works_with_eviction_and_no_persistence(sidecar: int) -> None:
    client = redis.Redis(port=sidecar, password=PASSWORD)
    client.set("k", "v", ex=60)
    assert client.get("k") == b"v"
    memory = client.info("memory")
    assert memory["maxmemory"] == 96 * 1024 * 1024
    assert memory["maxmemory_policy"] == "allkeys-lru"
    persistence = client.info("persistence")
    assert persistence["aof_enabled"] == 0
    assert persistence["rdb_changes_since_last_save"] > 0  # nothing is ever saved


@pytest.mark.parametrize(
    "command", ["FLUSHALL", "FLUSHDB", "CONFIG GET maxmemory", "KEYS *", "SAVE"]
)
def test_dangerous_commands_are_gone(sidecar: int, command: str) -> None:
    client = redis.Redis(port=sidecar, password=PASSWORD)
    with pytest.raises(redis.ResponseError, match="unknown command"):
        client.execute_command(*command.split())


def test_bound_to_one_address(sidecar: int) -> None:
    """Only 127.0.0.1 answers: 127.0.0.2 (also loopback, so a wildcard bind would answer there)
    is refused, so nothing outside the pod's loopback can reach Redis."""
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host="127.0.0.2", port=sidecar, password=PASSWORD, socket_timeout=2).ping()
