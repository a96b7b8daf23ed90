"""Redis backend: standalone, Sentinel or Cluster, always through redis-py's own clients.

Two clients from the same target: lookups sit on the request path and get a
short socket timeout; write-behind runs after the response and may wait
longer. Every batch goes out in one round trip per node: MGET on one server,
`mget_nonatomic` on a cluster (one pipelined MGET per slot, sent to each node
at once), non-transactional pipelines for writes.

A command beyond the pool size waits for a free connection, at most the command's
own timeout, on every topology: the standalone client has redis-py's
BlockingConnectionPool, the Sentinel client the same blocking behaviour on its
sentinel-managed pool (`BlockingSentinelPool`), and the cluster client, whose
per-node pools refuse at once (MaxConnectionsError), a semaphore of the pool size
in front of it (one command holds at most one connection per node). Without that
a burst beyond the pool would count as errors and go to the model.

Reconnection is the clients' own: a Sentinel-managed pool asks the sentinels
for the master on every new connection (so after a failover the next command
lands on the promoted replica), and the cluster client reloads its slot map
after a connection error or a MOVED reply. Every connection error is one
BackendError here; the FeatureStore above turns it into a fail-open miss.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from predictor.featurestore.backend import Backend, BackendError
from predictor.featurestore.redis_url import RedisTarget, Topology
from predictor.featurestore.settings import FeatureStoreSettings

T = TypeVar("T")


def _retry() -> Retry:
    # one immediate retry on a broken connection: after a restart or a failover every
    # pooled connection is stale, and the first command on each would otherwise fail
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError, RedisTimeoutError))


def _auth(target: RedisTarget, settings: FeatureStoreSettings) -> dict[str, Any]:
    password = target.password
    if password is None and settings.redis_password is not None:
        password = settings.redis_password.get_secret_value()
    return {"username": target.username or settings.redis_username, "password": password}


def _tls(settings: FeatureStoreSettings) -> dict[str, Any]:
    if not settings.redis_tls:
        return {}
    ca = str(settings.redis_tls_ca_file) if settings.redis_tls_ca_file else None
    return {"ssl": True, "ssl_ca_certs": ca}


def _standalone(target: RedisTarget, s: FeatureStoreSettings, timeout: float) -> Any:
    extra: dict[str, Any] = {}
    if not target.credentials_in_url:  # the settings' (or secret files') credentials
        extra = {k: v for k, v in _auth(target, s).items() if v is not None}
    if target.tls and s.redis_tls_ca_file is not None:
        extra["ssl_ca_certs"] = str(s.redis_tls_ca_file)
    pool = aioredis.BlockingConnectionPool.from_url(
        target.url,
        max_connections=s.max_connections,
        timeout=timeout,  # waiting for a free connection counts against the same budget
        socket_connect_timeout=s.connect_timeout_s,
        socket_timeout=timeout,
        retry=_retry(),
        client_name="predictor",
        **extra,
    )
    return aioredis.Redis.from_pool(pool)


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """The sentinel-managed pool (master discovery on each new connection) that, like
    BlockingConnectionPool, waits up to `timeout` for a free connection instead of
    failing at once; redis-py ships the blocking kind for standalone clients only."""


def _sentinel_master(target: RedisTarget, s: FeatureStoreSettings, timeout: float) -> Any:
    sentinel_pw = s.redis_sentinel_password
    sentinel = Sentinel(
        list(target.hosts),
        sentinel_kwargs={
            "socket_timeout": s.connect_timeout_s,
            "socket_connect_timeout": s.connect_timeout_s,
            "password": sentinel_pw.get_secret_value() if sentinel_pw else None,
            **_tls(s),
        },
        socket_timeout=timeout,
        socket_connect_timeout=s.connect_timeout_s,
        db=target.db,
        **_auth(target, s),
        **_tls(s),
    )
    return sentinel.master_for(
        target.master,
        connection_pool_class=BlockingSentinelPool,
        max_connections=s.max_connections,
        timeout=timeout,  # waiting for a free connection, as for standalone
        retry=_retry(),
        client_name="predictor",
    )


def _cluster(target: RedisTarget, s: FeatureStoreSettings, timeout: float) -> Any:
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],
        # serve the slots that are up while a node is down, instead of refusing everything
        require_full_coverage=False,
        max_connections=s.max_connections,
        socket_timeout=timeout,
        socket_connect_timeout=s.connect_timeout_s,
        retry=_retry(),
        client_name="predictor",
        **_auth(target, s),
        **_tls(s),
    )


def connect(target: RedisTarget, settings: FeatureStoreSettings, timeout: float) -> Any:
    """A redis-py client for the deployment `target` names (no I/O until the first command)."""
    if target.topology is Topology.SENTINEL:
        return _sentinel_master(target, settings, timeout)
    if target.topology is Topology.CLUSTER:
        return _cluster(target, settings, timeout)
    return _standalone(target, settings, timeout)


def _glob_escape(text: str) -> str:
    """`text` matched literally by a SCAN MATCH pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _bytes(value: bytes | str) -> bytes:
    """Replies are bytes (decode_responses is off); str only if someone turns it on."""
    return value if isinstance(value, bytes) else value.encode()


class RedisBackend(Backend):
    """One client per direction (reads, writes); keys carry `key_prefix`."""

    name = "redis"

    def __init__(self, target: RedisTarget, settings: FeatureStoreSettings) -> None:
        """`target` is the URL parsed once, by the registry (`parse_redis_url`)."""
        self.prefix = settings.key_prefix
        self.topology = target.topology
        self._read = connect(target, settings, settings.lookup_timeout_s)
        self._write = connect(target, settings, settings.write_timeout_s)
        self._read_deadline = settings.connect_timeout_s + 2 * settings.lookup_timeout_s
        self._cluster = self.topology is Topology.CLUSTER
        # Cluster only: at most the pool size of commands at once per client, so none meets
        # a full node pool; a command waits for its turn within its own timeout.
        n = settings.max_connections
        self._read_turns = (asyncio.Semaphore(n), settings.lookup_timeout_s)
        self._write_turns = (asyncio.Semaphore(n), settings.write_timeout_s)

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def _call(
        self, op: Callable[[], Awaitable[T]], deadline: float | None = None, write: bool = False
    ) -> T:
        """Run one command, turning every Redis or socket failure into BackendError."""
        try:
            if deadline is None:
                return await self._in_turn(op, write)
            async with asyncio.timeout(deadline):
                return await self._in_turn(op, write)
        except (RedisError, OSError, TimeoutError) as exc:
            # str(exc) never holds the URL, so no password reaches a log
            raise BackendError(f"redis: {type(exc).__name__}: {exc}") from exc

    async def _in_turn(self, op: Callable[[], Awaitable[T]], write: bool) -> T:
        """The command, on a cluster once one of the client's pool-size turns is free."""
        if not self._cluster:
            return await op()
        turns, wait = self._write_turns if write else self._read_turns
        try:
            async with asyncio.timeout(wait):
                await turns.acquire()
        except TimeoutError:
            raise RedisConnectionError(f"no connection free within {wait:g} s") from None
        try:
            return await op()
        finally:
            turns.release()

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        full = [self._k(k) for k in keys]
        if self._cluster:
            values = await self._call(lambda: self._read.mget_nonatomic(full), self._read_deadline)
        else:
            values = await self._call(lambda: self._read.mget(full), self._read_deadline)
        return [_bytes(v) if v is not None else None for v in values]

    async def set_many(self, items: Mapping[str, bytes], ttl_s: int) -> None:
        if not items:
            return

        async def run() -> None:
            pipe = self._write.pipeline(transaction=False)
            for key, value in items.items():
                pipe.set(self._k(key), value, ex=ttl_s)
            await pipe.execute()

        await self._call(run, write=True)

    async def append_history(
        self, lists: Mapping[str, Sequence[bytes]], cap: int, ttl_s: int
    ) -> None:
        if not lists:
            return

        async def run() -> None:
            pipe = self._write.pipeline(transaction=False)
            for key, entries in lists.items():
                full = self._k(key)
                pipe.rpush(full, *entries)
                pipe.ltrim(full, -cap, -1)
                pipe.expire(full, ttl_s)
            await pipe.execute()

        await self._call(run, write=True)

    async def read_history(self, key: str, limit: int) -> list[bytes]:
        values = await self._call(lambda: self._read.lrange(self._k(key), -limit, -1))
        return [_bytes(v) for v in values]

    async def scan_values(self, prefix: str, limit: int) -> list[bytes]:
        """SCAN (every primary of a cluster) for the keys, then MGET them in batches."""
        pattern = _glob_escape(self._k(prefix)) + "*"

        async def scan() -> list[str]:
            found: list[str] = []
            async for raw in self._read.scan_iter(match=pattern, count=1000):
                found.append(
                    (raw.decode() if isinstance(raw, bytes) else str(raw))[len(self.prefix) :]
                )
                if len(found) >= limit:
                    break
            return found

        keys = await self._call(scan)
        values: list[bytes] = []
        for start in range(0, len(keys), 500):
            values.extend(
                v for v in await self.get_many(keys[start : start + 500]) if v is not None
            )
        return values

    async def ping(self) -> None:
        """The store's health: on a cluster every master must answer (the keys hash to all
        of them; one node's PONG says nothing about the others'), else one PING."""
        if self._cluster:
            await self._call(
                lambda: self._read.ping(target_nodes=RedisCluster.PRIMARIES), self._read_deadline
            )
        else:
            await self._call(lambda: self._read.ping(), self._read_deadline)

    async def close(self) -> None:
        for client in (self._read, self._write):
            if self._cluster:
                await client.aclose()
            else:
                await client.aclose(close_connection_pool=True)
