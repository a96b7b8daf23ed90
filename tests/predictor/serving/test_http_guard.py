"""The connection layer's body deadline and its connection cap, on real sockets.

A uvicorn server with the guarded protocol runs in the test's own event loop with
small limits (a 0.5 s body deadline, a cap of a few connections), so each limit is
reached in well under a second; the predictor process uses the same protocol with
its settings (`tests/reliability/test_slow_clients.py` attacks a real one).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import orjson
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from harness.process import free_port
from predictor.serving.http_guard import HttpLimits, protocol_class
from predictor.serving.uvicorn_compat import ServerWithoutSignals
from predictor.settings import ServingSettings

Addr = tuple[str, int]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body and says how long it was; `/slow` takes 1 s to answer."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    if scope["path"] == "/slow":
        await asyncio.sleep(1.0)
    body = orjson.dumps({"bytes": size})
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def guarded(*, body_timeout_s: float = 0.5, max_connections: int = 64) -> AsyncIterator[Addr]:
    limits = HttpLimits(
        max_head_bytes=65536,
        header_timeout_s=5.0,
        idle_timeout_s=30.0,
        max_connections=max_connections,
        body_timeout_s=body_timeout_s,
    )
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=protocol_class(limits),
        ws="none",
        log_config=None,
        access_log=False,
        timeout_keep_alive=30,
    )
    server = ServerWithoutSignals(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        await task


def head(path: str = "/", length: int = 100) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n\r\n".encode()


async def connect(addr: Addr) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*addr)


async def answer(reader: asyncio.StreamReader, within: float = 5.0) -> tuple[int, dict[str, str]]:
    """(status, JSON body) of one response read until the server closes or it is whole."""
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), within)
    status = int(raw.split(b" ", 2)[1])
    length = int(raw.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return status, orjson.loads(await asyncio.wait_for(reader.readexactly(length), within))


async def closed(reader: asyncio.StreamReader, within: float = 5.0) -> bytes:
    """What is left before the server closes; fails when it keeps the connection open."""
    return await asyncio.wait_for(reader.read(), within)


def test_the_default_body_deadline_is_the_settings_default() -> None:
    default = ServingSettings.model_fields["http_body_timeout_s"].default
    limits = HttpLimits(
        max_head_bytes=4096, header_timeout_s=1, idle_timeout_s=1, max_connections=1
    )
    assert limits.body_timeout_s == default == 30.0
    given = ServingSettings(http_body_timeout_s=7)
    assert HttpLimits.from_settings(given, idle_timeout_s=3).body_timeout_s == 7


async def test_a_body_that_never_arrives_gets_408_json_and_is_closed() -> None:
    async with guarded(body_timeout_s=0.5) as addr:
        reader, writer = await connect(addr)
        start = time.monotonic()
        writer.write(head(length=100) + b"abcd")
        status, body = await answer(reader)
        assert status == 408
        assert body == {"error": "request body not received within 0.5 s"}
        assert await closed(reader) == b""
        assert 0.45 <= time.monotonic() - start < 3
        writer.close()


async def test_the_deadline_is_for_the_whole_body_not_each_read() -> None:
    """A body trickled a byte every 50 ms still has to be complete within the deadline: the
    408 comes about 0.5 s after the head, not 0.5 s after the last byte (a per-read timeout).
    The client stops writing just before the deadline, so the server's close meets no unread
    bytes (which would reset the connection and could destroy the answer)."""
    async with guarded(body_timeout_s=0.5) as addr:
        reader, writer = await connect(addr)
        started = time.monotonic()
        writer.write(head(length=100))
        read = asyncio.create_task(answer(reader))
        while time.monotonic() - started < 0.4 and not read.done():
            writer.write(b"x")
            await asyncio.sleep(0.05)
        status, body = await read
        elapsed = time.monotonic() - started
        assert status == 408 and "request body not received" in body["error"]
        assert elapsed < 0.85, f"408 after {elapsed:.2f} s: a per-read timeout would be >= 0.9"
        writer.close()


async def test_a_body_in_pieces_within_the_deadline_is_served() -> None:
    async with guarded(body_timeout_s=2.0) as addr:
        reader, writer = await connect(addr)
        writer.write(head(length=30))
        for _ in range(3):
            await asyncio.sleep(0.2)
            writer.write(b"0123456789")
        assert await answer(reader) == (200, {"bytes": 30})
        # The same connection, kept alive, takes the next request too.
        writer.write(head(length=2) + b"ok")
        assert await answer(reader) == (200, {"bytes": 2})
        writer.close()


async def test_at_the_cap_the_stalest_stalled_connection_makes_room() -> None:
    async with guarded(body_timeout_s=30, max_connections=4) as addr:
        stalled = []
        for _ in range(4):
            reader, writer = await connect(addr)
            writer.write(head(length=100) + b"abcd")
            stalled.append((reader, writer))
            await asyncio.sleep(0.05)  # so the first is unambiguously the stalest
        reader, writer = await connect(addr)
        writer.write(head(length=2) + b"hi")
        assert await answer(reader) == (200, {"bytes": 2})
        status, body = await answer(stalled[0][0])
        assert status == 408
        assert "while the server is at its limit of 4 connections" in body["error"]
        for other, _ in stalled[1:]:  # the others are untouched
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(other.read(1), 0.2)
        for _, w in [*stalled, (reader, writer)]:
            w.close()


async def test_at_the_cap_never_answered_go_before_answered_keep_alive() -> None:
    """A stalled head opened after a keep-alive connection was answered still goes first
    (it never finished a request); the keep-alive one goes next, with no bytes sent."""
    async with guarded(max_connections=2) as addr:
        kept_r, kept_w = await connect(addr)
        kept_w.write(head(length=1) + b"a")
        assert await answer(kept_r) == (200, {"bytes": 1})
        await asyncio.sleep(0.05)
        stalled_r, stalled_w = await connect(addr)
        stalled_w.write(b"POST / HTTP/1.1\r\nHost: t\r\n")  # a head that never ends
        await asyncio.sleep(0.05)
        new_r, new_w = await connect(addr)
        status, _ = await answer(stalled_r)
        assert status == 408
        new_w.write(head(length=1) + b"b")
        assert await answer(new_r) == (200, {"bytes": 1})
        last_r, last_w = await connect(addr)  # both answered: the one answered first goes
        assert await closed(kept_r) == b""
        last_w.write(head(length=1) + b"c")
        assert await answer(last_r) == (200, {"bytes": 1})
        for w in (stalled_w, kept_w, new_w, last_w):
            w.close()


async def test_at_the_cap_connections_being_served_are_never_closed() -> None:
    async with guarded(max_connections=2) as addr:
        busy = []
        for _ in range(2):
            reader, writer = await connect(addr)
            writer.write(head("/slow", length=1) + b"a")
            busy.append((reader, writer))
        await asyncio.sleep(0.2)  # both requests are with the application
        extra_r, extra_w = await connect(addr)
        status, body = await answer(extra_r)
        assert status == 503
        assert "each with a request being served" in body["error"]
        for reader, _ in busy:
            assert await answer(reader) == (200, {"bytes": 1})
        for _, w in [*busy, (extra_r, extra_w)]:
            w.close()


async def test_a_pipelined_head_does_not_expose_a_request_being_served() -> None:
    """A request being served with the start of a second one behind it (pipelining) is
    still being served: at the cap the newcomer is refused, the first answer arrives."""
    async with guarded(max_connections=1) as addr:
        reader, writer = await connect(addr)
        writer.write(head("/slow", length=1) + b"a" + b"POST / HTTP/1.1\r\nHost: t\r\n")
        await asyncio.sleep(0.2)
        extra_r, extra_w = await connect(addr)
        status, _ = await answer(extra_r)
        assert status == 503
        assert await answer(reader) == (200, {"bytes": 1})
        for w in (writer, extra_w):
            w.close()
