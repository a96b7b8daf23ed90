"""Backend selection by URL scheme, and room for a third backend."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from predictor.featurestore.backend import Backend
from predictor.featurestore.memory import MemoryBackend
from predictor.featurestore.redis import RedisBackend
from predictor.featurestore.registry import create_backend, register_backend
from predictor.featurestore.settings import FeatureStoreSettings


def settings(url: str | None) -> FeatureStoreSettings:
    return FeatureStoreSettings(redis_url=SecretStr(url) if url else None)


async def test_schemes_pick_backends() -> None:
    assert isinstance(create_backend(settings(None)), MemoryBackend)
    assert isinstance(create_backend(settings("memory://")), MemoryBackend)
    for url in ("redis://127.0.0.1:1/0", "rediss://:pw@127.0.0.1:1/0", "unix:///tmp/r.sock"):
        backend = create_backend(settings(url))
        assert isinstance(backend, RedisBackend)
        await backend.close()


def test_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'mongodb'.*memory, redis, rediss, unix"):
        create_backend(settings("mongodb://x"))


class DictBackend(MemoryBackend):
    """A 'third' backend defined outside the package."""

    name = "dict"

    def __init__(self, url: str) -> None:
        super().__init__(10)
        self.url = url


def test_a_third_backend_registers_without_touching_the_predictor() -> None:
    def factory(url: str, _: FeatureStoreSettings) -> Backend:
        return DictBackend(url)

    register_backend("dict", factory)
    backend = create_backend(settings("dict://somewhere"))
    assert isinstance(backend, DictBackend) and backend.url == "dict://somewhere"
