"""Write-behind: cache writes leave the request path and go out in batches.

`submit` only enqueues (never awaits the backend), so a response is sent
whatever Redis is doing. One consumer task merges everything queued into one
flush (one pipeline per kind of write). The queue is bounded: with a dead
backend, writes are dropped and counted instead of piling up in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from opentelemetry.trace import SpanContext

log = logging.getLogger(__name__)


@dataclass
class WriteOp:
    """Writes one request produced: values to SET, entries to append to histories."""

    model: str
    version: str  # "" for data no model version produced (fetched tweets)
    values: dict[str, bytes] = field(default_factory=dict)
    history: dict[str, list[bytes]] = field(default_factory=dict)
    # (cap, ttl_s) of the lists in `history`; None: the per-user history's (the store's)
    list_limits: tuple[int, int] | None = None
    # counts this op's entries when they are not stored; None: as cache write errors
    dropped: Callable[[int], None] | None = None
    # the traced request that produced it, which its flush span links to; None: untraced
    origin: SpanContext | None = None

    @property
    def size(self) -> int:
        return len(self.values) + sum(len(v) for v in self.history.values())


Flush = Callable[[list[WriteOp]], Awaitable[None]]


class WriteBehind:
    """Bounded queue of WriteOps with one consumer that flushes them in batches."""

    def __init__(self, flush: Flush, *, max_entries: int, batch_entries: int) -> None:
        self._flush = flush
        self.max_entries = max_entries
        self.batch_entries = batch_entries
        self._queue: asyncio.Queue[WriteOp] = asyncio.Queue()
        self._pending = 0  # entries queued, not yet flushed
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def pending(self) -> int:
        return self._pending

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._consume(), name="writer")

    def submit(self, op: WriteOp) -> bool:
        """Queue `op` without waiting; False (dropped) when closing or full."""
        if op.size == 0:
            return True
        if self._closing or self._task is None or self._pending + op.size > self.max_entries:
            return False
        self._pending += op.size
        self._queue.put_nowait(op)
        return True

    async def join(self) -> None:
        """Wait until everything submitted so far has been flushed (or failed)."""
        await self._queue.join()

    async def close(self, timeout: float) -> None:
        """Refuse new writes, flush what is queued for up to `timeout`, then stop."""
        self._closing = True
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            log.warning("write-behind: %d entries not flushed at shutdown", self._pending)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _consume(self) -> None:
        while True:
            batch = [await self._queue.get()]
            size = batch[0].size
            while size < self.batch_entries and not self._queue.empty():
                op = self._queue.get_nowait()
                batch.append(op)
                size += op.size
            try:
                await self._flush(batch)
            except Exception:  # the flush reports its own failures; never kill the consumer
                log.exception("write-behind flush failed")
            finally:
                self._pending -= size
                for _ in batch:
                    self._queue.task_done()
