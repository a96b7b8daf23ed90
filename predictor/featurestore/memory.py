"""In-process backend: an LRU with per-key expiry.

The default when no Redis is configured, so the predictor runs with nothing
else around. It is per process and forgets on restart; Redis is for sharing.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from predictor.featurestore.backend import Backend

Value = bytes | list[bytes]


class MemoryBackend(Backend):
    """LRU of at most `max_entries` keys; every key expires after its TTL."""

    name = "memory"

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, Value]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def ttl(self, key: str) -> float | None:
        """Seconds left before `key` expires; None when absent."""
        entry = self._live(key)
        return None if entry is None else entry[0] - self._clock()

    def _live(self, key: str) -> tuple[float, Value] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry

    def _put(self, key: str, value: Value, ttl_s: int) -> None:
        self._data[key] = (self._clock() + ttl_s, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        out: list[bytes | None] = []
        for key in keys:
            entry = self._live(key)
            out.append(entry[1] if entry is not None and isinstance(entry[1], bytes) else None)
        return out

    async def set_many(self, items: Mapping[str, bytes], ttl_s: int) -> None:
        for key, value in items.items():
            self._put(key, value, ttl_s)

    async def append_history(
        self, lists: Mapping[str, Sequence[bytes]], cap: int, ttl_s: int
    ) -> None:
        for key, entries in lists.items():
            entry = self._live(key)
            old = entry[1] if entry is not None and isinstance(entry[1], list) else []
            self._put(key, [*old, *entries][-cap:], ttl_s)

    async def read_history(self, key: str, limit: int) -> list[bytes]:
        entry = self._live(key)
        if entry is None or not isinstance(entry[1], list):
            return []
        return list(entry[1][-limit:])

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()
