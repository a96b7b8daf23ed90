"""The `PREDICTOR_REDIS_URL` contract: which Redis deployment, where, as what.

- `redis://[[USER]:PASSWORD@]HOST:PORT[/DB]`, `rediss://` (TLS), `unix:///path.sock`:
  one standalone server (the sidecar, or one shared instance); redis-py parses these.
- `redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]`: the
  sentinels' addresses and the master set they watch; the password is the data nodes'.
- `redis+cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]`: any seed nodes of a
  Redis Cluster; the client learns the rest of the topology from them.

Parsing only: the clients are redis-py's own (redis.py). Errors name the part of
the URL that is wrong and never repeat the password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote


class Topology(StrEnum):
    STANDALONE = "standalone"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


SCHEMES = {
    "redis": Topology.STANDALONE,
    "rediss": Topology.STANDALONE,
    "unix": Topology.STANDALONE,
    "redis+sentinel": Topology.SENTINEL,
    "redis+cluster": Topology.CLUSTER,
}
DEFAULT_PORT = {Topology.SENTINEL: 26379, Topology.CLUSTER: 6379}
_HOST = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+))(?::(?P<port>\d+))?$")


@dataclass(frozen=True)
class RedisTarget:
    """Where the feature store's Redis is: standalone keeps the URL for redis-py."""

    topology: Topology
    url: str = ""  # standalone only
    hosts: tuple[tuple[str, int], ...] = ()  # sentinels, or cluster seed nodes
    master: str = ""  # sentinel only: the monitored master set's name
    db: int = 0
    username: str | None = None
    password: str | None = None
    credentials_in_url: bool = False  # standalone: redis-py reads them from `url`
    tls: bool = False  # rediss://


def _hosts(netloc: str, default_port: int, scheme: str) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for part in netloc.split(","):
        m = _HOST.match(part.strip())
        if m is None:
            raise ValueError(f"PREDICTOR_REDIS_URL ({scheme}): {part!r} is not HOST:PORT")
        port = int(m["port"]) if m["port"] else default_port
        if not 0 < port < 65536:
            raise ValueError(f"PREDICTOR_REDIS_URL ({scheme}): port {port} is out of range")
        out.append((m["v6"] or m["host"], port))
    return tuple(out)


def parse_redis_url(url: str) -> RedisTarget:
    """The deployment `url` names; ValueError (without the password) when malformed."""
    scheme, sep, rest = url.partition("://")
    topology = SCHEMES.get(scheme.lower()) if sep else None
    if topology is None:
        raise ValueError(
            f"PREDICTOR_REDIS_URL scheme {scheme!r} is not one of {', '.join(SCHEMES)}"
        )
    if topology is Topology.STANDALONE:
        return RedisTarget(
            topology,
            url=url,
            credentials_in_url="@" in rest,
            tls=scheme.lower() == "rediss",
        )
    scheme = scheme.lower()
    if "?" in rest or "#" in rest:
        raise ValueError(
            f"PREDICTOR_REDIS_URL ({scheme}) takes no query string: TLS and timeouts are "
            "settings (PREDICTOR_REDIS_TLS, PREDICTOR_REDIS_TLS_CA_FILE, ...)"
        )
    auth, at, location = rest.rpartition("@")
    username = password = None
    if at:
        user, _, pw = auth.partition(":")
        username, password = unquote(user) or None, unquote(pw) or None
    netloc, _, path = location.partition("/")
    if not netloc:
        raise ValueError(f"PREDICTOR_REDIS_URL ({scheme}) names no HOST:PORT")
    hosts = _hosts(netloc, DEFAULT_PORT[topology], scheme)
    parts = [p for p in path.split("/") if p]
    if topology is Topology.CLUSTER:
        if parts:
            raise ValueError(
                "PREDICTOR_REDIS_URL (redis+cluster) takes no path: a cluster has one database"
            )
        return RedisTarget(topology, hosts=hosts, username=username, password=password)
    if not parts or len(parts) > 2:
        raise ValueError(
            "PREDICTOR_REDIS_URL (redis+sentinel) needs the master set's name: "
            "redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]"
        )
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise ValueError(f"PREDICTOR_REDIS_URL (redis+sentinel): DB {parts[1]!r} is no number")
        db = int(parts[1])
    return RedisTarget(
        topology,
        hosts=hosts,
        master=unquote(parts[0]),
        db=db,
        username=username,
        password=password,
    )
