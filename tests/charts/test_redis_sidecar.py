"""The sidecar's rendered redis.conf and start command, run by a real redis-server: what the
chart promises holds.

The container image is not pullable here, so Debian's redis-server (installed by .ci/run) runs
the same shell command with the same config the chart gives the container, only the mounted
paths moved to a temporary directory and `port` to a free loopback port. The password comes from
a file, as the mounted Secret provides it, and must end up in no process's argv or environment.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from harness.process import ServerProcess, free_port
from tests.charts import chart_tools as ct

PASSWORD = "s3cret-Pass.word"


@dataclass
class Sidecar:
    port: int
    proc: ServerProcess  # `sh -c` that execs redis-server: its pid becomes the server's
    tmp: Path
    probe: str  # the readiness probe's shell command, pointed at this port


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server not installed (.ci/run installs it with apt-get)")
    ct.fetch_tools()
    docs = ct.render(sets=[f"redis.auth.password={PASSWORD}"])
    tmp = tmp_path_factory.mktemp("redis")
    port = free_port()
    text = ct.one(docs, "ConfigMap")["data"]["redis.conf"]
    assert "\ndir /data\n" in text and "\nport 6379\n" in text
    assert "include /run/redis-auth/auth.conf" in text
    paths = {
        "/run/secrets/redis/password": str(tmp / "password"),
        "/run/redis-auth/auth.conf": str(tmp / "auth.conf"),
        "/etc/redis/redis.conf": str(tmp / "redis.conf"),
    }
    for old, new in paths.items():
        text = text.replace(old, new)
    text = text.replace("\ndir /data\n", f"\ndir {tmp}\n").replace(
        "\nport 6379\n", f"\nport {port}\n"
    )
    (tmp / "redis.conf").write_text(text)
    secret = ct.one(docs, "Secret")
    assert PASSWORD not in str(ct.one(docs, "InferenceService")), "the pod spec holds no password"
    (tmp / "password").write_text(PASSWORD)  # what the Secret volume mounts
    container = ct.container(ct.one(docs, "InferenceService")["spec"]["predictor"], "redis")
    assert container["command"] == ["sh", "-c"] and "env" not in container
    script = container["args"][0]
    for old, new in paths.items():
        script = script.replace(old, new)
    probe = container["readinessProbe"]["exec"]["command"][2].replace("6379", str(port))
    assert secret["data"]
    cmd = ["sh", "-c", script.replace("exec redis-server", f"exec {server}")]
    proc = ServerProcess(cmd, tmp / "redis-server.out").start()
    try:
        ping = redis.Redis(port=port, password=PASSWORD).ping
        try:
            proc.wait_until(ping, 10, errors=(redis.ConnectionError,))
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"redis-server did not start with the chart's config:\n{exc}")
        yield Sidecar(port, proc, tmp, probe)
    finally:
        proc.stop(timeout=10)


def test_the_password_is_in_no_argv_and_no_environment(sidecar: Sidecar) -> None:
    pid = sidecar.proc.pid
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    # exec'd: the shell's pid is the server itself (which retitles itself), no shell is left
    assert Path(argv[0].decode()).name.startswith("redis-server "), argv
    assert PASSWORD.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert PASSWORD.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
    mode = stat.S_IMODE(os.stat(sidecar.tmp / "auth.conf").st_mode)
    assert mode == 0o600, oct(mode)


def test_the_probe_needs_no_password_and_fails_when_redis_is_gone(sidecar: Sidecar) -> None:
    assert subprocess.run(["sh", "-c", sidecar.probe], timeout=10).returncode == 0
    elsewhere = sidecar.probe.replace(str(sidecar.port), str(free_port()))
    assert subprocess.run(["sh", "-c", elsewhere], timeout=10).returncode != 0


def test_auth_is_required(sidecar: Sidecar) -> None:
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=sidecar.port).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=sidecar.port, password="wrong").ping()


def test_cache_works_with_eviction_and_no_persistence(sidecar: Sidecar) -> None:
    client = redis.Redis(port=sidecar.port, password=PASSWORD)
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
def test_dangerous_commands_are_gone(sidecar: Sidecar, command: str) -> None:
    client = redis.Redis(port=sidecar.port, password=PASSWORD)
    with pytest.raises(redis.ResponseError, match="unknown command"):
        client.execute_command(*command.split())


def test_bound_to_one_address(sidecar: Sidecar) -> None:
    """Only 127.0.0.1 answers: 127.0.0.2 (also loopback, so a wildcard bind would answer there)
    is refused, so nothing outside the pod's loopback can reach Redis."""
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host="127.0.0.2", port=sidecar.port, password=PASSWORD, socket_timeout=2).ping()
