"""The batcher coalesces concurrent texts, keeps order, and drains on close."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from predictor.batching import Batcher
from predictor.engine import BatchResult
from predictor.errors import NotReady


class RecordingEngine:
    """Stands in for Engine.run: records batch sizes, encodes each text's length."""

    def __init__(self, delay: float = 0.01, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.delay = delay
        self.fail = fail

    async def run(self, texts: list[str]) -> BatchResult:
        self.batches.append(list(texts))
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("engine exploded")
        probs = np.array([[len(t), 0.0, 0.0] for t in texts], dtype=np.float32)
        return BatchResult(probs, [len(t) > 5 for t in texts], self.delay)


def make(engine: RecordingEngine, cap: int = 8, delay_s: float = 0.0, queue: int = 100) -> Batcher:
    b = Batcher(
        engine.run, model_name="t", max_batch_size=cap, max_delay_s=delay_s, max_queue=queue
    )
    b.start()
    return b


async def test_concurrent_requests_share_batches_and_keep_order() -> None:
    engine = RecordingEngine()
    batcher = make(engine, cap=8)
    texts = [[("x" * (i + 1))] for i in range(20)]
    rows = await asyncio.gather(*(batcher.submit(t) for t in texts))
    for i, r in enumerate(rows):
        assert r[0].probabilities[0] == i + 1  # each caller got its own text's row
        assert r[0].truncated == (i + 1 > 5)
    assert max(len(b) for b in engine.batches) == 8
    assert len(engine.batches) < 20  # coalesced
    await batcher.close()


async def test_multi_text_request_rows_in_order() -> None:
    engine = RecordingEngine()
    batcher = make(engine, cap=3)
    rows = await batcher.submit(["a", "bb", "ccc", "dddd", "eeeee"])
    assert [r.probabilities[0] for r in rows] == [1, 2, 3, 4, 5]
    assert [len(b) for b in engine.batches] == [3, 2]
    await batcher.close()


async def test_delay_gathers_stragglers() -> None:
    engine = RecordingEngine(delay=0.0)
    batcher = make(engine, cap=8, delay_s=0.2)
    first = asyncio.create_task(batcher.submit(["a"]))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(batcher.submit(["b"]))
    await asyncio.gather(first, second)
    assert engine.batches == [["a", "b"]]
    await batcher.close()


async def test_close_answers_queued_then_refuses() -> None:
    engine = RecordingEngine(delay=0.05)
    batcher = make(engine, cap=2)
    pending = [asyncio.create_task(batcher.submit([f"t{i}"])) for i in range(6)]
    await asyncio.sleep(0)  # let them enqueue
    await batcher.close()
    # every queued text was answered by the drain itself, not after it
    assert sum(len(b) for b in engine.batches) == 6
    results = await asyncio.wait_for(asyncio.gather(*pending), 1)
    assert [r[0].probabilities[0] for r in results] == [2.0] * 6
    with pytest.raises(NotReady):
        await batcher.submit(["late"])


async def test_failure_reaches_every_waiter_and_batcher_survives() -> None:
    engine = RecordingEngine(fail=True)
    batcher = make(engine)
    results = await asyncio.gather(
        batcher.submit(["a"]), batcher.submit(["b"]), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    engine.fail = False
    assert (await batcher.submit(["ok"]))[0].probabilities[0] == 2
    await batcher.close()


async def test_full_queue_sheds_load() -> None:
    engine = RecordingEngine(delay=0.2)
    batcher = make(engine, cap=1, queue=3)
    running = asyncio.create_task(batcher.submit(["a"]))
    await asyncio.sleep(0.01)
    with pytest.raises(NotReady, match="overloaded"):
        await batcher.submit(["b", "c", "d", "e"])
    await running
    await batcher.close()


async def test_cancelled_request_is_skipped() -> None:
    engine = RecordingEngine(delay=0.05)
    batcher = make(engine, cap=1)
    busy = asyncio.create_task(batcher.submit(["busy"]))
    await asyncio.sleep(0.01)
    gone = asyncio.create_task(batcher.submit(["gone"]))
    await asyncio.sleep(0.01)
    gone.cancel()
    await busy
    await batcher.close()
    assert ["gone"] not in engine.batches


async def test_a_backlog_is_grouped_by_length_oldest_first() -> None:
    engine = RecordingEngine(delay=0.05)
    batcher = make(engine, cap=2)
    batcher.length_window = 16
    blocker = asyncio.create_task(batcher.submit(["b" * 3]))  # keeps the engine busy
    await asyncio.sleep(0.01)
    lengths = [50, 5, 40, 6, 45, 4]  # arrival order, while the engine is busy
    rows = await asyncio.gather(*(batcher.submit(["x" * n]) for n in lengths))
    await blocker
    assert [r[0].probabilities[0] for r in rows] == lengths  # every caller got its own row
    # the oldest (50) goes first with its nearest shorter neighbour (45); then the oldest
    # left (5) with 4; then 40 with 6
    assert [sorted(len(t) for t in b) for b in engine.batches[1:]] == [[45, 50], [4, 5], [6, 40]]
    await batcher.close()


async def test_window_of_one_keeps_arrival_order() -> None:
    engine = RecordingEngine(delay=0.05)
    batcher = make(engine, cap=2)
    batcher.length_window = 1
    blocker = asyncio.create_task(batcher.submit(["b"]))
    await asyncio.sleep(0.01)
    await asyncio.gather(*(batcher.submit(["x" * n]) for n in [50, 5, 40, 6]))
    await blocker
    assert [[len(t) for t in b] for b in engine.batches[1:]] == [[50, 5], [40, 6]]
    await batcher.close()


async def test_close_drains_a_grouped_backlog() -> None:
    engine = RecordingEngine(delay=0.02)
    batcher = make(engine, cap=3)
    batcher.length_window = 64
    pending = [asyncio.create_task(batcher.submit(["y" * (n % 7 + 1)])) for n in range(20)]
    await asyncio.sleep(0.005)
    await batcher.close()
    rows = await asyncio.wait_for(asyncio.gather(*pending), 1)  # all answered, none lost
    assert [r[0].probabilities[0] for r in rows] == [n % 7 + 1 for n in range(20)]
    assert sum(len(b) for b in engine.batches) == 20
