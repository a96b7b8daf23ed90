"""The Redis backend against a real redis-server: prefix, TTLs, caps, and its failures."""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest
from pydantic import SecretStr

from predictor.featurestore.backend import BackendError
from predictor.featurestore.redis import RedisBackend
from predictor.featurestore.redis_url import parse_redis_url
from predictor.featurestore.settings import FeatureStoreSettings
from tests.fixtures.redis_server import RedisServer


def backend(url: str, **kw: object) -> RedisBackend:
    return RedisBackend(parse_redis_url(url), FeatureStoreSettings(redis_url=SecretStr(url), **kw))  # type: ignore[arg-type]


async def test_round_trip_with_prefix_and_ttl(redis_server: RedisServer) -> None:
    be = backend(redis_server.url(), key_prefix="t1:")
    try:
        await be.set_many({"a": b"1", "b": b"\x00\xff"}, ttl_s=120)
        assert await be.get_many(["a", "missing", "b"]) == [b"1", None, b"\x00\xff"]
        raw = redis_server.client()
        assert sorted(raw.keys("*")) == [b"t1:a", b"t1:b"]
        assert all(0 < raw.ttl(k) <= 120 for k in raw.keys("*"))
    finally:
        await be.close()


async def test_history_is_capped_and_expires(redis_server: RedisServer) -> None:
    be = backend(redis_server.url(), key_prefix="")
    try:
        await be.append_history({"h:a": [b"1", b"2", b"3"], "h:b": [b"x"]}, cap=2, ttl_s=50)
        await be.append_history({"h:a": [b"4"]}, cap=2, ttl_s=50)
        assert await be.read_history("h:a", 10) == [b"3", b"4"]
        assert await be.read_history("h:b", 10) == [b"x"]
        assert await be.read_history("h:none", 10) == []
        raw = redis_server.client()
        assert 0 < raw.ttl("h:a") <= 50 and 0 < raw.ttl("h:b") <= 50
    finally:
        await be.close()


async def test_wrong_password_is_a_backend_error(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = RedisServer(tmp_path_factory.mktemp("redis-auth"), password="right").start()
    try:
        good = backend(server.url())
        await good.set_many({"k": b"v"}, 60)
        assert await good.get_many(["k"]) == [b"v"]
        await good.close()
        bad = backend(server.url(password="wrong"))
        with pytest.raises(BackendError, match=r"(?i)auth|password"):
            await bad.get_many(["k"])
        await bad.close()
        anonymous = backend(f"redis://127.0.0.1:{server.port}/0")
        with pytest.raises(BackendError, match=r"(?i)auth"):
            await anonymous.ping()
        await anonymous.close()
    finally:
        server.stop()


async def test_tls_and_password_come_from_the_url(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed: it makes the test's TLS certificate")
    server = RedisServer(tmp_path_factory.mktemp("redis-tls"), password="pw", tls=True).start()
    try:
        be = backend(server.url(), key_prefix="")
        await be.set_many({"k": b"over tls"}, 60)
        assert await be.get_many(["k"]) == [b"over tls"]
        await be.close()
        plain = backend(f"redis://:pw@127.0.0.1:{server.port}/0")  # TLS port, no TLS
        with pytest.raises(BackendError):
            await plain.ping()
        await plain.close()
    finally:
        server.stop()


async def test_stopped_server_fails_fast(redis_server: RedisServer) -> None:
    be = backend(redis_server.url())
    try:
        await be.ping()
        redis_server.stop()
        start = time.perf_counter()
        with pytest.raises(BackendError):
            await be.get_many(["a"])
        assert time.perf_counter() - start < 1.0
    finally:
        await be.close()


async def test_hung_server_costs_at_most_the_timeouts(redis_server: RedisServer) -> None:
    be = backend(redis_server.url(), lookup_timeout_s=0.2, connect_timeout_s=0.2)
    try:
        await be.ping()
        assert redis_server.proc is not None
        os.kill(redis_server.proc.pid, signal.SIGSTOP)
        try:
            start = time.perf_counter()
            with pytest.raises(BackendError):
                await be.get_many(["a"])
            assert time.perf_counter() - start < 1.0
        finally:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        assert await be.get_many(["a"]) == [None]  # the broken connection was replaced
    finally:
        await be.close()
