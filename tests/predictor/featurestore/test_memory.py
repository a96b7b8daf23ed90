"""The memory backend: LRU bound, expiry, capped histories."""

from __future__ import annotations

from predictor.featurestore.memory import MemoryBackend


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_values_expire_after_their_ttl() -> None:
    clock = Clock()
    mem = MemoryBackend(10, clock)
    await mem.set_many({"a": b"1", "b": b"2"}, ttl_s=60)
    assert await mem.get_many(["a", "b", "c"]) == [b"1", b"2", None]
    assert mem.ttl("a") == 60
    clock.now += 59.9
    assert await mem.get_many(["a"]) == [b"1"]
    clock.now += 0.2
    assert await mem.get_many(["a", "b"]) == [None, None]
    assert len(mem) == 0


async def test_least_recently_used_goes_first() -> None:
    mem = MemoryBackend(2)
    await mem.set_many({"a": b"1", "b": b"2"}, ttl_s=60)
    await mem.get_many(["a"])  # a is now the most recent
    await mem.set_many({"c": b"3"}, ttl_s=60)
    assert await mem.get_many(["a", "b", "c"]) == [b"1", None, b"3"]


async def test_history_is_capped_and_refreshed() -> None:
    clock = Clock()
    mem = MemoryBackend(10, clock)
    await mem.append_history({"h": [b"1", b"2"]}, cap=3, ttl_s=10)
    clock.now += 8
    await mem.append_history({"h": [b"3", b"4"]}, cap=3, ttl_s=10)
    assert await mem.read_history("h", 100) == [b"2", b"3", b"4"]
    assert await mem.read_history("h", 2) == [b"3", b"4"]
    clock.now += 9  # 17 s after the first append, 9 after the refresh
    assert await mem.read_history("h", 100) == [b"2", b"3", b"4"]
    clock.now += 2
    assert await mem.read_history("h", 100) == []
