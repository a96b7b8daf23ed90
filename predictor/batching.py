"""Dynamic batching: coalesce texts from concurrent requests into one forward pass.

One consumer task takes whatever queued while the engine was busy (up to the
cap), optionally waits `max_delay` for more, and awaits the engine. Under load,
batches form by themselves with no added latency; when idle, a lone request
runs at once (with the default delay of 0).

When more texts wait than one batch holds, the batch is the oldest text plus
the queued texts closest below it in length (within a window of the oldest
`length_window`): every batch is padded to the longest text in it, so mixing
a 10-token and a 90-token tweet wastes most of a forward pass. The oldest
text always goes next, so grouping never starves a long text.

One request's bad data fails that request alone. Texts are checked before
they are queued (a string Python holds but UTF-8 cannot encode, such as a lone
surrogate, would fail the tokenizer for the whole batch); and if a forward
pass still fails, the batch is split in halves and each half retried, so only
the texts that fail on their own get the error, never their neighbours.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from opentelemetry.trace import INVALID_SPAN, Span

from predictor import metrics
from predictor.deadline import remaining
from predictor.engine import BatchResult
from predictor.errors import BadInput, DeadlineExceeded, NotReady
from predictor.tracing import QueueWait, Tracing, exemplar

log = logging.getLogger(__name__)

RunBatch = Callable[[list[str]], Awaitable[BatchResult]]


@dataclass(frozen=True)
class Row:
    """One text's result: probabilities over the labels and whether it was cut."""

    probabilities: np.ndarray
    truncated: bool


@dataclass
class _Item:
    text: str
    future: asyncio.Future[Row]
    enqueued: float = field(default_factory=time.perf_counter)
    started: bool = False  # in a forward pass: its answer comes whether anyone waits or not
    wait: QueueWait | None = None  # its request's queue span, when that request is traced


class Batcher:
    """Queue in front of the engine; `submit` is the only way texts reach the model."""

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        model_name: str,
        version: str = "",
        max_batch_size: int,
        max_delay_s: float,
        max_queue: int,
        length_window: int = 1,
        tracing: Tracing | None = None,
    ) -> None:
        self._run_batch = run_batch
        self._tracing = tracing or Tracing.off()
        self._model = model_name
        self._version = version  # every series of this batcher carries the loaded version
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self.length_window = length_window
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._pending: list[_Item] = []  # taken off the queue, oldest first, not yet run
        self._task: asyncio.Task[None] | None = None
        self._running: list[_Item] = []  # the batch the engine has now
        self._closing = False
        self._stop_seen = False

    def start(self) -> None:
        """Start the consumer on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._consume(), name="batcher")

    async def submit(self, texts: list[str]) -> list[Row]:
        """Queue the texts and wait for their rows, in order."""
        check_texts(texts)
        if self._closing or self._task is None:
            raise NotReady("the server is shutting down and takes no new requests")
        waiting = self._queue.qsize() + len(self._pending)
        if waiting + len(texts) > self.max_queue:
            metrics.SHED.labels(self._model, self._version).inc()
            raise NotReady(f"overloaded: {waiting} texts already queued; retry later")
        left = remaining()
        if left is not None and left <= 0:
            metrics.DROPPED_TEXTS.labels(self._model, self._version, "expired").inc(len(texts))
            raise DeadlineExceeded("the request's deadline passed before it was queued")
        loop = asyncio.get_running_loop()
        wait = self._tracing.queue_wait(len(texts))
        items = [_Item(t, loop.create_future(), wait=wait) for t in texts]
        for item in items:
            self._queue.put_nowait(item)
        try:
            async with asyncio.timeout(left):
                return list(await asyncio.gather(*(i.future for i in items)))
        except TimeoutError:
            # The gather's cancellation cancelled every future: what is still queued is
            # skipped when its turn comes (`_run` drops done futures), never computed.
            self._dropped(items, "expired")
            raise DeadlineExceeded(
                f"not answered within the request's deadline ({left:.3g} s); "
                f"{sum(not i.started for i in items)} of {len(items)} texts were still queued "
                "and were dropped"
            ) from None
        except asyncio.CancelledError:  # the client went away (REST disconnect, gRPC cancel)
            self._dropped(items, "cancelled")
            raise
        finally:
            if wait is not None:
                wait.end(sum(not i.started for i in items))

    def _dropped(self, items: list[_Item], reason: str) -> None:
        queued = sum(not i.started for i in items)
        if queued:
            metrics.DROPPED_TEXTS.labels(self._model, self._version, reason).inc(queued)

    async def close(self) -> None:
        """Refuse new texts, answer everything already queued, then stop."""
        self._closing = True
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None

    def shed(self, message: str) -> int:
        """Refuse new texts and fail every text not yet answered with `NotReady(message)`.

        Used when a drain runs out of time: the waiting requests then get a clear
        503 from the application instead of being cancelled mid-response by the
        HTTP server. Returns how many texts were failed.
        """
        self._closing = True
        self._take_queued()
        waiting = [*self._running, *self._pending]
        self._pending = []
        failed = 0
        for item in waiting:
            if not item.future.done():
                item.future.set_exception(NotReady(message))
                failed += 1
        if self._task is not None and not self._stop_seen:
            self._queue.put_nowait(None)
        return failed

    def _take_queued(self) -> None:
        """Move everything queued right now to `_pending`, noting the stop marker."""
        while True:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if item is None:
                self._stop_seen = True
            else:
                self._pending.append(item)

    async def _fill(self) -> None:
        """Wait for a first text, then up to `max_delay` for the batch to fill."""
        if not self._pending and not self._stop_seen:
            item = await self._queue.get()
            if item is None:
                self._stop_seen = True
                return
            self._pending.append(item)
        self._take_queued()
        deadline = time.perf_counter() + self.max_delay_s
        while len(self._pending) < self.max_batch_size and not self._stop_seen:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                item = await asyncio.wait_for(self._queue.get(), remaining)
            except TimeoutError:
                break
            if item is None:
                self._stop_seen = True
            else:
                self._pending.append(item)
                self._take_queued()

    def _next_batch(self) -> list[_Item]:
        """The oldest text and, from the window, the texts just shorter than it."""
        cap = self.max_batch_size
        if len(self._pending) <= cap:
            batch, self._pending = self._pending, []
            return batch
        window = self._pending[: max(self.length_window, cap)]
        order = sorted(range(len(window)), key=lambda i: (len(window[i].text), i))
        head = order.index(0)
        start = max(0, min(head - cap + 1, len(order) - cap))
        chosen = set(order[start : start + cap])
        batch = [window[i] for i in sorted(chosen)]
        self._pending = [it for i, it in enumerate(window) if i not in chosen] + self._pending[
            len(window) :
        ]
        return batch

    async def _consume(self) -> None:
        while True:
            await self._fill()
            if not self._pending:
                if self._stop_seen:
                    return
                continue
            await self._run(self._next_batch())

    async def _run(self, batch: list[_Item]) -> None:
        live = [i for i in batch if not i.future.done()]  # drop texts of cancelled requests
        if not live:
            return
        started = time.perf_counter()
        wait = metrics.QUEUE_WAIT.labels(self._model, self._version)
        for item in live:
            wait.observe(started - item.enqueued)
        for item in live:
            item.started = True
        self._running = live
        try:
            if self._tracing.on:
                await self._traced(live)
            else:
                await self._forward(live)
        finally:
            self._running = []

    async def _traced(self, live: list[_Item]) -> None:
        """The forward pass as one span for every traced request in it: under the oldest,
        linked to each request's queue span, each of which links back and ends here."""
        waits: dict[int, tuple[QueueWait, int]] = {}
        for item in live:
            if item.wait is not None:
                w, n = waits.get(id(item.wait), (item.wait, 0))
                waits[id(item.wait)] = (w, n + 1)
        requests = [w for w, _ in waits.values()]
        with self._tracing.fan_in(
            "predictor.batch",
            [w.parent for w in requests],
            [w.span.get_span_context() for w in requests],
            {"predictor.batch.size": len(live), "predictor.batch.requests": len(requests)},
        ) as span:
            ctx = span.get_span_context() if span.is_recording() else None
            for w, n in waits.values():
                w.rode(ctx, n)
            await self._forward(live, span)

    async def _forward(self, live: list[_Item], span: Span = INVALID_SPAN) -> None:
        """One forward pass; when it fails, bisect so only failing texts hear the error."""
        metrics.BATCH_SIZE.labels(self._model, self._version).observe(len(live))
        try:
            result = await self._run_batch([i.text for i in live])
        except Exception as exc:
            if span.is_recording():
                span.add_event(
                    "forward failed", {"exception.type": type(exc).__name__, "texts": len(live)}
                )
            if len(live) == 1:
                log.error("text failed in the engine on its own", exc_info=exc)
                if not live[0].future.done():
                    live[0].future.set_exception(exc)
                return
            log.warning(
                "batch of %d failed (%s); retrying in halves to isolate the culprit",
                len(live),
                type(exc).__name__,
            )
            half = len(live) // 2
            for part in (live[:half], live[half:]):
                still = [i for i in part if not i.future.done()]
                if still:
                    await self._forward(still, span)
            return
        metrics.INFERENCE_LATENCY.labels(self._model, self._version).observe(
            result.seconds, exemplar(span)
        )
        if span.is_recording():
            span.set_attributes(
                {
                    "predictor.batch.padded_length": result.padded_length,
                    "predictor.precision": result.precision,
                    "predictor.engine.seconds": result.seconds,
                }
            )
        for n, item in enumerate(live):
            if not item.future.done():
                item.future.set_result(Row(result.probabilities[n], result.truncated[n]))


def check_texts(texts: list[str]) -> None:
    """Every text must be a non-empty string that UTF-8 can encode (what the tokenizer needs).

    The wire decoders already reject such texts with a message naming the field;
    this is the batcher's own guard, so no caller can put a poison text in a batch.
    """
    for n, text in enumerate(texts):
        if not isinstance(text, str) or not text:
            raise BadInput(f"text {n} of the request is not a non-empty string")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadInput(
                f"text {n} of the request is not valid Unicode: {exc.reason} at "
                f"character {exc.start}"
            ) from None
