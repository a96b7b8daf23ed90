"""Redis backend: `redis.asyncio`, bounded pools, timeouts always set.

Two pools from the same URL: lookups sit on the request path and get a short
socket timeout; write-behind runs after the response and may wait longer.
AUTH, TLS (`rediss://`) and the database come from the URL. Every command of a
batch goes out in one round trip (MGET, or a non-transactional pipeline).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from predictor.featurestore.backend import Backend, BackendError
from predictor.featurestore.settings import FeatureStoreSettings

T = TypeVar("T")


def _pool(url: str, settings: FeatureStoreSettings, socket_timeout: float) -> Any:
    return aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=settings.max_connections,
        timeout=socket_timeout,  # waiting for a free connection counts against the same budget
        socket_connect_timeout=settings.connect_timeout_s,
        socket_timeout=socket_timeout,
        # one immediate retry on a broken connection: after a Redis restart every pooled
        # connection is stale, and the first command on each would otherwise fail
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        client_name="predictor",
    )


def _bytes(value: bytes | str) -> bytes:
    """Replies are bytes (decode_responses is off); str only if someone turns it on."""
    return value if isinstance(value, bytes) else value.encode()


class RedisBackend(Backend):
    """One client per pool; keys carry `key_prefix`."""

    name = "redis"

    def __init__(self, url: str, settings: FeatureStoreSettings) -> None:
        self.prefix = settings.key_prefix
        self._read = aioredis.Redis.from_pool(_pool(url, settings, settings.lookup_timeout_s))
        self._write = aioredis.Redis.from_pool(_pool(url, settings, settings.write_timeout_s))
        self._read_deadline = settings.connect_timeout_s + 2 * settings.lookup_timeout_s

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def _call(self, op: Callable[[], Awaitable[T]], deadline: float | None = None) -> T:
        """Run one command, turning every Redis or socket failure into BackendError."""
        try:
            if deadline is None:
                return await op()
            async with asyncio.timeout(deadline):
                return await op()
        except (RedisError, OSError, TimeoutError) as exc:
            # str(exc) never holds the URL, so no password reaches a log
            raise BackendError(f"redis: {type(exc).__name__}: {exc}") from exc

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        full = [self._k(k) for k in keys]
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

        await self._call(run)

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

        await self._call(run)

    async def read_history(self, key: str, limit: int) -> list[bytes]:
        values = await self._call(lambda: self._read.lrange(self._k(key), -limit, -1))
        return [_bytes(v) for v in values]

    async def ping(self) -> None:
        await self._call(lambda: self._read.ping(), self._read_deadline)

    async def close(self) -> None:
        for client in (self._read, self._write):
            await client.aclose(close_connection_pool=True)
