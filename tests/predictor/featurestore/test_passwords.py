"""Passwords from mounted files (pydantic-settings' secrets directory), against a real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from predictor.app import Settings
from predictor.featurestore.backend import BackendError
from predictor.featurestore.redis import RedisBackend
from predictor.featurestore.redis_url import parse_redis_url
from predictor.featurestore.settings import FeatureStoreSettings
from tests.fixtures.redis_server import RedisServer

PASSWORD = "from-a-file-4c1d"


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", password=PASSWORD)
    (tmp_path / "redis").mkdir()
    yield server.start()
    server.stop()  # it used to outlive the run: three redis-servers left behind per suite


def secrets_dir(tmp_path: Path, **files: str) -> Path:
    d = tmp_path / "secrets"
    d.mkdir(exist_ok=True)
    for name, value in files.items():
        (d / name).write_text(value + "\n")  # as a Secret volume may hold it, newline and all
    return d


def _read(monkeypatch: pytest.MonkeyPatch, url: str) -> FeatureStoreSettings:
    """The feature store's settings as the composition root reads them (env + secret files)."""
    monkeypatch.setenv("PREDICTOR_REDIS_URL", url)
    return Settings.load().featurestore


async def test_the_password_file_authenticates_a_url_without_one(
    guarded: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "PREDICTOR_SECRETS_DIR", str(secrets_dir(tmp_path, PREDICTOR_REDIS_PASSWORD=PASSWORD))
    )
    settings = _read(monkeypatch, guarded.url(password=""))
    assert settings.redis_password is not None
    assert settings.redis_password.get_secret_value() == PASSWORD
    backend = RedisBackend(parse_redis_url(guarded.url(password="")), settings)
    try:
        await backend.set_many({"k": b"v"}, 60)
        assert await backend.get_many(["k"]) == [b"v"]
    finally:
        await backend.close()


async def test_without_the_file_the_same_url_is_refused(
    guarded: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREDICTOR_SECRETS_DIR", str(tmp_path / "absent"))
    settings = _read(monkeypatch, guarded.url(password=""))
    assert settings.redis_password is None
    backend = RedisBackend(parse_redis_url(guarded.url(password="")), settings)
    try:
        with pytest.raises(BackendError, match="Authentication"):
            await backend.ping()
    finally:
        await backend.close()


async def test_a_password_in_the_url_wins_over_the_file(
    guarded: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "PREDICTOR_SECRETS_DIR", str(secrets_dir(tmp_path, PREDICTOR_REDIS_PASSWORD=PASSWORD))
    )
    url = guarded.url(password="not-it")
    backend = RedisBackend(parse_redis_url(url), _read(monkeypatch, url))
    try:
        with pytest.raises(BackendError, match=r"Authentication|invalid"):
            await backend.ping()
    finally:
        await backend.close()


def test_a_key_prefix_with_a_hash_tag_is_refused() -> None:
    with pytest.raises(ValidationError, match="Redis Cluster would hash only that part"):
        FeatureStoreSettings(key_prefix="{tss}:")
