"""Backend selection by URL scheme, and room for a third backend (registered or installed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from predictor.featurestore.backend import Backend
from predictor.featurestore.memory import MemoryBackend
from predictor.featurestore.redis import RedisBackend
from predictor.featurestore.redis_url import Topology
from predictor.featurestore.registry import (
    ENTRY_POINT_GROUP,
    create_backend,
    register_backend,
    unregister_backend,
)
from predictor.featurestore.settings import FeatureStoreSettings

REPO = Path(__file__).resolve().parents[3]


def settings(url: str | None) -> FeatureStoreSettings:
    return FeatureStoreSettings(redis_url=SecretStr(url) if url else None)


async def test_schemes_pick_backends() -> None:
    assert isinstance(create_backend(settings(None)), MemoryBackend)
    assert isinstance(create_backend(settings("memory://")), MemoryBackend)
    urls = {
        "redis://127.0.0.1:1/0": Topology.STANDALONE,
        "rediss://:pw@127.0.0.1:1/0": Topology.STANDALONE,
        "unix:///tmp/r.sock": Topology.STANDALONE,
        "redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster": Topology.SENTINEL,
        "redis+cluster://127.0.0.1:1": Topology.CLUSTER,
    }
    for url, topology in urls.items():
        backend = create_backend(settings(url))
        assert isinstance(backend, RedisBackend) and backend.topology is topology
        await backend.close()


def test_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(
        ValueError,
        match=r"'mongodb'; known schemes are memory, redis, redis\+cluster, redis\+sentinel, "
        r"rediss, unix \(more",
    ):
        create_backend(settings("mongodb://x"))


class DictBackend(MemoryBackend):
    """A 'third' backend defined outside the package."""

    name = "dict"

    def __init__(self, url: str) -> None:
        super().__init__(10)
        self.url = url


@pytest.fixture
def dict_scheme() -> Iterator[str]:
    yield "dict"
    unregister_backend("dict")  # no other test may see it


def test_a_third_backend_registers_without_touching_the_predictor(dict_scheme: str) -> None:
    def factory(url: str, _: FeatureStoreSettings) -> Backend:
        return DictBackend(url)

    with pytest.raises(ValueError, match="'dict'"):
        create_backend(settings("dict://somewhere"))
    register_backend(dict_scheme, factory)
    backend = create_backend(settings("dict://somewhere"))
    assert isinstance(backend, DictBackend) and backend.url == "dict://somewhere"


def test_an_installed_package_adds_a_backend_through_the_entry_point_group(
    tmp_path: Path,
) -> None:
    """A distribution on sys.path declaring the group, found by importlib.metadata as pip
    would install it: the predictor's code is not touched and nothing is registered by hand."""
    site = tmp_path / "site"
    (site / "shelf_backend").mkdir(parents=True)
    (site / "shelf_backend" / "__init__.py").write_text(
        textwrap.dedent(
            """
            from predictor.featurestore.memory import MemoryBackend

            class ShelfBackend(MemoryBackend):
                name = "shelf"

            def make(url, settings):
                return ShelfBackend(settings.memory_max_entries)
            """
        )
    )
    dist = site / "shelf_backend-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shelf-backend\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nshelf = shelf_backend:make\n")
    probe = textwrap.dedent(
        """
        from pydantic import SecretStr
        from predictor.featurestore.registry import create_backend
        from predictor.featurestore.settings import FeatureStoreSettings
        s = FeatureStoreSettings(redis_url=SecretStr("shelf://anything"), memory_max_entries=7)
        b = create_backend(s)
        print(type(b).__module__, b.name, b.max_entries)
        """
    )
    env = {"PYTHONPATH": f"{site}:{REPO}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["shelf_backend", "shelf", "7"]
    # without the distribution the same URL is refused, naming the group to install into
    bare = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert bare.returncode != 0 and ENTRY_POINT_GROUP in bare.stderr
