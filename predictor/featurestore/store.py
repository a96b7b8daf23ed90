"""FeatureStore: a backend wrapped in everything that makes it safe on the request path.

Fail-open by construction: every call goes through the circuit breaker, and a
failure (down, slow, wrong password) is counted, logged once per interval and
answered as "unavailable", never raised into a prediction. Writes only ever
go through the write-behind queue. A background PING keeps
`predictor_featurestore_up` true to the backend even with no traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from predictor.errors import UpstreamUnavailable
from predictor.featurestore import metrics
from predictor.featurestore.backend import Backend, BackendError
from predictor.featurestore.breaker import CircuitBreaker, ThrottledLog
from predictor.featurestore.registry import create_backend
from predictor.featurestore.settings import FeatureStoreSettings
from predictor.featurestore.writer import WriteBehind, WriteOp
from predictor.tracing import Tracing

log = logging.getLogger(__name__)
T = TypeVar("T")


class Unavailable(Exception):
    """The backend was skipped (breaker open) or failed; the caller carries on without it."""


class FeatureStore:
    """Batched reads, write-behind writes, breaker, health and metrics over one Backend."""

    def __init__(
        self,
        settings: FeatureStoreSettings,
        backend: Backend | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.tracing = tracing or Tracing.off()
        self.backend = backend or create_backend(settings)
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s)
        self._errors = ThrottledLog(log, settings.error_log_interval_s)
        self.writer = WriteBehind(
            self._flush,
            max_entries=settings.write_queue_size,
            batch_entries=settings.write_batch_size,
        )
        self._up = metrics.FEATURESTORE_UP.labels(self.backend.name)
        self._up.set(0)
        self.up = False  # the last call or PING succeeded
        self._health: asyncio.Task[None] | None = None

    @property
    def ttl_s(self) -> int:
        return self.settings.cache_ttl_seconds

    @property
    def history_cap(self) -> int:
        return self.settings.history_cap

    @property
    def in_process(self) -> bool:
        """The backend keeps its data in this process (a near cache would only copy it)."""
        return self.backend.in_process

    # --- life cycle ------------------------------------------------------
    async def start(self) -> None:
        """Start the writer and the health loop; a dead backend does not stop the start."""
        self.writer.start()
        with contextlib.suppress(Unavailable):
            await self._guard("ping", self.backend.ping)
        if self.up:
            log.info("feature store: %s backend reachable", self.backend.name)
        self._health = asyncio.get_running_loop().create_task(self._watch(), name="fs-health")

    async def close(self, timeout: float = 5.0) -> None:
        """Flush pending writes (bounded by `timeout`), then release the backend."""
        if self._health is not None:
            self._health.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health
            self._health = None
        await self.writer.close(timeout)
        await self.backend.close()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_interval_s)
            try:
                await self.backend.ping()
            except BackendError as exc:
                self._failed("health check", exc)
            else:
                self._ok()

    # --- guarded calls ---------------------------------------------------
    def _ok(self) -> None:
        if self.breaker.state != "closed":
            log.info("feature store: %s backend is back", self.backend.name)
        self.breaker.success()
        self.up = True
        self._up.set(1)

    def _failed(self, what: str, exc: BaseException) -> None:
        self.breaker.failure()
        self.up = False
        self._up.set(0)
        self._errors.warning(
            "feature store (%s) %s failed, serving without it: %s", self.backend.name, what, exc
        )

    async def _guard(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        if not self.breaker.allow():
            raise Unavailable(f"{self.backend.name} skipped: circuit open")
        try:
            result = await call()
        except BackendError as exc:
            self._failed(what, exc)
            raise Unavailable(str(exc)) from exc
        self._ok()
        return result

    # --- reads -----------------------------------------------------------
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values for `keys` in one round trip; raises Unavailable instead of failing."""
        return await self._guard("lookup", lambda: self.backend.get_many(keys))

    async def read_history(self, key: str, limit: int) -> list[bytes]:
        """A history for a route that cannot answer without it: 503 when unavailable."""
        try:
            return await self._guard("history read", lambda: self.backend.read_history(key, limit))
        except Unavailable as exc:
            raise UpstreamUnavailable(f"the feature store is unavailable: {exc}") from None

    async def scan_values(self, prefix: str, limit: int) -> list[bytes]:
        """Values under a key prefix, for offline readers (drift); Unavailable on failure."""
        return await self._guard("scan", lambda: self.backend.scan_values(prefix, limit))

    # --- writes ----------------------------------------------------------
    def write(self, op: WriteOp) -> bool:
        """Queue writes for after the response, every writer through the one queue (cache,
        histories, feedback), so the drain flushes them all; a full queue drops and counts
        them. False when dropped."""
        if self.tracing.on:
            op.origin = self.tracing.current()
        if self.writer.submit(op):
            return True
        _lost(op)
        self._errors.warning(
            "feature store write queue full (%d entries): dropping writes", self.writer.pending
        )
        return False

    async def _flush(self, ops: list[WriteOp]) -> None:
        if not self.tracing.on:
            await self._write(ops)
            return
        origins = [op.origin for op in ops if op.origin is not None]
        with self.tracing.fan_in(
            "predictor.writebehind.flush",
            origins,
            origins,
            {
                "predictor.writebehind.ops": len(ops),
                "predictor.writebehind.entries": sum(op.size for op in ops),
                "predictor.featurestore.backend": self.backend.name,
            },
        ) as span:
            stored = await self._write(ops)
            if span.is_recording():
                span.set_attribute("predictor.writebehind.stored", stored)

    async def _write(self, ops: list[WriteOp]) -> bool:
        """One pipeline per kind of write; False when the backend failed (ops counted lost)."""
        values: dict[str, bytes] = {}
        lists: dict[tuple[int, int], dict[str, list[bytes]]] = {}
        default = (self.settings.history_cap, self.ttl_s)
        for op in ops:
            values.update(op.values)
            group = lists.setdefault(op.list_limits or default, {})
            for key, entries in op.history.items():
                group.setdefault(key, []).extend(entries)

        async def run() -> None:
            if values:
                await self.backend.set_many(values, self.ttl_s)
            for (cap, ttl_s), group in lists.items():
                if group:
                    await self.backend.append_history(group, cap, ttl_s)

        try:
            await self._guard("write", run)
        except Unavailable:
            for op in ops:
                _lost(op)
            return False
        return True


def _lost(op: WriteOp) -> None:
    """Count an op that was not stored, where its writer wants it counted."""
    if op.dropped is not None:
        op.dropped(op.size)
    else:
        metrics.CACHE_WRITE_ERRORS.labels(op.model, op.version).inc(op.size)
