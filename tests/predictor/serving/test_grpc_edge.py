"""The gRPC edge's message deadline, on a real grpc server and channel.

A call whose request message does not arrive within the deadline is cancelled with
DEADLINE_EXCEEDED (grpc itself would run a unary handler only once the message is
whole, and never time it out); unary clients are served as before. The predictor's
own calls through the same edge are in test_server.py (tritonclient, KServe clients).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from harness.process import free_port
from predictor.serving.edge import GrpcEdge

METHOD = "/test.Echo/Echo"


async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b"echo:" + request


@contextlib.asynccontextmanager
async def server(message_timeout_s: float) -> AsyncIterator[grpc.aio.Channel]:
    edge = GrpcEdge(lambda: {}, message_timeout_s=message_timeout_s)
    srv = grpc.aio.server(interceptors=(edge,))
    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    srv.add_generic_rpc_handlers((handler,))
    port = free_port()
    srv.add_insecure_port(f"127.0.0.1:{port}")
    await srv.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await srv.stop(0)


async def test_a_unary_call_is_served_through_the_edge() -> None:
    async with server(0.5) as channel:
        assert await channel.unary_unary(METHOD)(b"hi", timeout=5) == b"echo:hi"


async def test_a_message_that_never_arrives_is_deadline_exceeded() -> None:
    async def stalled() -> AsyncIterator[bytes]:
        await asyncio.sleep(30)  # the stream is open, its message never comes
        yield b"late"

    async with server(0.5) as channel:
        call = channel.stream_unary(METHOD)(stalled(), timeout=10)
        start = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert err.value.details() == "request message not received within 0.5 s"
        assert 0.4 <= time.monotonic() - start < 5


async def test_a_stream_that_ends_without_a_message_is_invalid_argument() -> None:
    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""

    async with server(5) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await channel.stream_unary(METHOD)(nothing(), timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
