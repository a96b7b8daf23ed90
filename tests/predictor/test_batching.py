"""The batcher coalesces concurrent texts, keeps order, and drains on close."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from predictor.batching import Batcher
from predictor.engine import BatchResult
from predictor.errors import BadInput, NotReady


class RecordingEngine:
    """Stands in for Engine.run: records batch sizes, encodes each text's length.

    A batch holding a text that contains `poison` fails as a whole, as a tokenizer
    error on one text fails `encode_batch` for all of them.
    """

    def __init__(self, delay: float = 0.01, fail: bool = False, poison: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.delay = delay
        self.fail = fail
        self.poison = poison

    async def run(self, texts: list[str]) -> BatchResult:
        self.batches.append(list(texts))
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("engine exploded")
        if self.poison is not None and any(self.poison in t for t in texts):
            raise ValueError("tokenizer choked")
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
    running = asyncio.create_task(batcher.submit(["a"]))  # on the engine: not queued
    await asyncio.sleep(0.01)
    queued = [asyncio.create_task(batcher.submit([t])) for t in ("b", "c")]
    await asyncio.sleep(0)
    third = asyncio.create_task(batcher.submit(["d"]))  # 3 of 3: still fits
    await asyncio.sleep(0)
    with pytest.raises(NotReady, match="overloaded: 3 texts already queued"):
        await batcher.submit(["e"])  # one text, refused only because 3 wait
    assert [r[0].probabilities[0] for r in await asyncio.gather(running, *queued, third)] == [1] * 4
    assert (await batcher.submit(["f"]))[0].probabilities[0] == 1  # room again once drained
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


async def test_a_poison_text_fails_only_its_own_request() -> None:
    engine = RecordingEngine(delay=0.01, poison="POISON")
    batcher = make(engine, cap=8)
    blocker = asyncio.create_task(batcher.submit(["busy"]))  # the rest queue up behind it
    await asyncio.sleep(0.005)
    texts = [f"innocent {i}" for i in range(15)]
    texts.insert(6, "POISON pill")
    results = await asyncio.gather(*(batcher.submit([t]) for t in texts), return_exceptions=True)
    await blocker
    failed = [t for t, r in zip(texts, results, strict=True) if isinstance(r, BaseException)]
    assert failed == ["POISON pill"]
    assert isinstance(results[6], ValueError)
    for t, r in zip(texts, results, strict=True):
        if t != "POISON pill":
            assert r[0].probabilities[0] == len(t)  # type: ignore[index]
    # the poisoned batch was bisected: some batches retried smaller, the culprit alone last
    assert ["POISON pill"] in engine.batches
    assert max(len(b) for b in engine.batches) == 8
    await batcher.close()


async def test_two_poison_texts_in_one_batch_fail_alone() -> None:
    engine = RecordingEngine(delay=0.0, poison="BAD")
    batcher = make(engine, cap=8)
    texts = ["a", "BAD1", "b", "c", "d", "e", "BAD2", "f"]
    results = await asyncio.gather(*(batcher.submit([t]) for t in texts), return_exceptions=True)
    assert [t for t, r in zip(texts, results, strict=True) if isinstance(r, Exception)] == [
        "BAD1",
        "BAD2",
    ]
    await batcher.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("poison \ud800 pill", "text 1 of the request is not valid Unicode"),
        ("\udfff", "surrogates not allowed at character 0"),
        ("", "not a non-empty string"),
    ],
)
async def test_texts_utf8_cannot_encode_are_refused_before_queueing(
    text: str, message: str
) -> None:
    engine = RecordingEngine()
    batcher = make(engine)
    with pytest.raises(BadInput, match=message):
        await batcher.submit(["fine", text])
    assert engine.batches == []  # nothing of that request reached the engine
    assert (await batcher.submit(["next"]))[0].probabilities[0] == 4
    await batcher.close()


async def test_shed_answers_every_waiting_text_with_shutting_down() -> None:
    engine = RecordingEngine(delay=0.1)
    batcher = make(engine, cap=1)
    waiting = [asyncio.create_task(batcher.submit([f"t{i}"])) for i in range(5)]
    await asyncio.sleep(0.02)  # one on the engine, four queued
    assert batcher.shed("the server is shutting down") == 5
    results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 1)
    assert all(isinstance(r, NotReady) and "shutting down" in r.message for r in results)
    with pytest.raises(NotReady):
        await batcher.submit(["late"])
    await asyncio.wait_for(batcher.close(), 1)
