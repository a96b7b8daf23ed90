"""The storage interface every feature-store backend implements.

Small on purpose: batch get, batch set with TTL, a capped expiring list per
user, and a health probe. The feature store above it owns keys, values,
metrics and failure handling, so a backend only moves bytes.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence


class BackendError(Exception):
    """The backend could not answer (down, slow, refusing auth, out of memory)."""


class Backend(abc.ABC):
    """Async key-value store with expiring keys and capped lists."""

    #: short name for metrics and logs (`memory`, `redis`)
    name: str = "backend"
    #: the data lives in this process already (no near cache in front of it)
    in_process: bool = False

    @abc.abstractmethod
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values for `keys` in order, None where absent, in one round trip."""

    @abc.abstractmethod
    async def set_many(self, items: Mapping[str, bytes], ttl_s: int) -> None:
        """Store every item with the same expiry, in one round trip."""

    @abc.abstractmethod
    async def append_history(
        self, lists: Mapping[str, Sequence[bytes]], cap: int, ttl_s: int
    ) -> None:
        """Append entries to each list, keep its newest `cap`, refresh its expiry."""

    @abc.abstractmethod
    async def read_history(self, key: str, limit: int) -> list[bytes]:
        """The newest `limit` entries of a list, oldest first."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Return when healthy; raise BackendError otherwise."""

    async def scan_values(self, prefix: str, limit: int) -> list[bytes]:
        """Values of at most `limit` keys that start with `prefix`. For offline readers only
        (drift reads one version's cached predictions), never on the request path; a backend
        that cannot enumerate its keys says so."""
        raise BackendError(f"the {self.name} backend cannot enumerate keys")

    async def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections."""
