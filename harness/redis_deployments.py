"""Shared Redis deployments on loopback: Sentinel (master, replica, three sentinels) and
a three-master Redis Cluster, built from real `redis-server`/`redis-sentinel` processes.

Tests and the feature-store benchmark (loadtest.featurestore_modes) both start them
here, on harness.servers.RedisServer, so both exercise the same topology the same way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from harness.process import ServerProcess, free_port, poll
from harness.servers import RedisServer

SENTINEL_BIN = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"
CLI_BIN = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def wait_until(check: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    """Poll `check()` until it holds; Redis errors (not up yet, still syncing) count as not yet."""
    poll(check, timeout, what, errors=(redis.RedisError,))


@dataclass
class SentinelProcess:
    """One `redis-sentinel` with its own (rewritable) config file."""

    workdir: Path
    master_name: str
    master_port: int
    password: str | None
    down_after_ms: int
    port: int = field(default_factory=free_port)
    server: ServerProcess | None = None

    def start(self) -> SentinelProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "sentinel.conf"
        name = self.master_name
        lines = [
            f"port {self.port}", "bind 127.0.0.1", f"dir {self.workdir}",
            f"logfile {self.workdir / 'sentinel.log'}",
            f"sentinel monitor {name} 127.0.0.1 {self.master_port} 2",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {4 * self.down_after_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]  # fmt: skip
        if self.password:
            lines.append(f"sentinel auth-pass {name} {self.password}")
        conf.write_text("\n".join(lines) + "\n")
        self.server = ServerProcess([SENTINEL_BIN, str(conf)], self.workdir / "sentinel.out")
        self.server.start().wait_until(
            lambda: bool(self.client().ping()), 20, errors=(redis.RedisError,)
        )
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def stop(self) -> None:
        if self.server is not None and self.server.running():
            self.server.stop(timeout=10)
        self.server = None


@dataclass
class SentinelDeployment:
    """A master, one replica and three sentinels (quorum 2) watching them."""

    workdir: Path
    password: str | None = None
    master_name: str = "mymaster"
    down_after_ms: int = 1000
    nodes: list[RedisServer] = field(default_factory=list)
    sentinels: list[SentinelProcess] = field(default_factory=list)

    def start(self) -> SentinelDeployment:
        auth = ["--masterauth", self.password] if self.password else []
        master = RedisServer(self.workdir / "master", self.password, args=auth)
        (self.workdir / "master").mkdir(parents=True, exist_ok=True)
        master.start()
        (self.workdir / "replica").mkdir(parents=True, exist_ok=True)
        replica = RedisServer(
            self.workdir / "replica",
            self.password,
            args=[*auth, "--replicaof", "127.0.0.1", str(master.port)],
        ).start()
        self.nodes = [master, replica]
        wait_until(
            lambda: replica.client().info("replication")["master_link_status"] == "up",
            "the replica never synced with the master",
        )
        self.sentinels = [
            SentinelProcess(
                self.workdir / f"sentinel-{n}",
                self.master_name,
                master.port,
                self.password,
                self.down_after_ms,
            ).start()
            for n in range(3)
        ]

        def settled() -> bool:
            for s in self.sentinels:
                state: dict[str, int] = s.client().sentinel_master(self.master_name)  # type: ignore[assignment]
                if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1:
                    return False
            return True

        wait_until(settled, "the sentinels never found each other and the replica")
        return self

    def url(self, password: str | None = None) -> str:
        pw = self.password if password is None else password
        auth = f":{pw}@" if pw else ""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{auth}{hosts}/{self.master_name}"

    def master_port(self) -> int:
        """The master's port as the first answering sentinel reports it."""
        for s in self.sentinels:
            try:
                addr = s.client().sentinel_get_master_addr_by_name(self.master_name)
                return int(addr[1])  # type: ignore[index]
            except redis.RedisError:
                continue
        raise RuntimeError("no sentinel answered")

    def master(self) -> RedisServer:
        port = self.master_port()
        return next(n for n in self.nodes if n.port == port)

    def stop(self) -> None:
        for s in self.sentinels:
            s.stop()
        for n in self.nodes:
            n.stop()


@dataclass
class ClusterDeployment:
    """`masters` redis-server nodes in cluster mode, joined by `redis-cli --cluster create`.

    `cluster-require-full-coverage no`: while a node is down, the others keep
    serving their slots (a cache should lose a third, not everything).
    """

    workdir: Path
    password: str | None = None
    masters: int = 3
    node_timeout_ms: int = 1000
    nodes: list[RedisServer] = field(default_factory=list)

    def start(self) -> ClusterDeployment:
        auth = ["--masterauth", self.password] if self.password else []
        for n in range(self.masters):
            wd = self.workdir / f"node-{n}"
            wd.mkdir(parents=True, exist_ok=True)
            args = [
                "--cluster-enabled", "yes", "--cluster-config-file", str(wd / "nodes.conf"),
                "--cluster-node-timeout", str(self.node_timeout_ms),
                # an explicit bus port: the default (port + 10000) overflows for high free ports
                "--cluster-port", str(free_port()),
                "--cluster-require-full-coverage", "no", *auth,
            ]  # fmt: skip
            self.nodes.append(RedisServer(wd, self.password, args=args).start())
        env = {**os.environ, **({"REDISCLI_AUTH": self.password} if self.password else {})}
        subprocess.run(
            [CLI_BIN, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, env=env, timeout=60,
        )  # fmt: skip
        wait_until(self.healthy, "the cluster never reached cluster_state:ok on every node")
        return self

    def healthy(self) -> bool:
        for n in self.nodes:
            info = n.client().cluster("info")
            if info["cluster_state"] != "ok" or int(info["cluster_known_nodes"]) != self.masters:
                return False
        return True

    def url(self, password: str | None = None) -> str:
        pw = self.password if password is None else password
        auth = f":{pw}@" if pw else ""
        return f"redis+cluster://{auth}127.0.0.1:{self.nodes[0].port}"

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()
