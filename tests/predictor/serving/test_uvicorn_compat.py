"""One test per uvicorn seam (predictor/serving/uvicorn_compat.py): an upgrade that renames a
method the HTTP guard overrides, or the state it reads, fails here by name instead of
silently dropping a guard."""

from __future__ import annotations

import asyncio
import inspect

import uvicorn
from uvicorn.server import ServerState

from predictor.serving import http_guard, uvicorn_compat


def test_pinned_version_is_the_one_installed() -> None:
    assert uvicorn_compat.INSTALLED_VERSION == uvicorn_compat.UVICORN_VERSION


def test_seam_protocol_overrides_exist_upstream() -> None:
    for name in uvicorn_compat.PROTOCOL_OVERRIDES:
        assert callable(getattr(uvicorn_compat.HttpToolsProtocol, name, None)), name


def test_seam_guard_overrides_nothing_unlisted() -> None:
    """Every base method the guard replaces is a listed seam."""
    base = uvicorn_compat.HttpToolsProtocol
    ours = {
        n
        for n, v in vars(http_guard.GuardedHttpProtocol).items()
        if callable(v) and hasattr(base, n)
    }
    assert ours <= set(uvicorn_compat.PROTOCOL_OVERRIDES), ours


class Transport(asyncio.Transport):
    """Just enough of a socket transport for a protocol to take a connection."""

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1) if name in ("peername", "sockname") else default

    def is_closing(self) -> bool:
        return False


def test_seam_protocol_state_on_a_live_connection() -> None:
    """The attributes the guard reads exist once a connection is made."""

    async def connect() -> None:
        config = uvicorn.Config(app=lambda *a: None, loop="asyncio")
        config.load()
        proto = uvicorn_compat.HttpToolsProtocol(config, ServerState(), {})
        proto.connection_made(Transport())
        for name in uvicorn_compat.PROTOCOL_ATTRIBUTES:
            assert hasattr(proto, name), name
        assert proto in proto.connections

    asyncio.run(connect())


def test_seam_status_line_is_bytes_by_code() -> None:
    assert uvicorn_compat.STATUS_LINE[408].startswith(b"HTTP/1.1 408")


def test_seam_capture_signals_is_a_context_manager_we_replace() -> None:
    base = inspect.getattr_static(uvicorn.Server, "capture_signals")
    ours = inspect.getattr_static(uvicorn_compat.ServerWithoutSignals, "capture_signals")
    assert callable(base) and ours is not base
    server = uvicorn_compat.ServerWithoutSignals(uvicorn.Config(app=lambda *a: None))
    with server.capture_signals():  # installs nothing, restores nothing
        pass


def test_seam_cycle_state_of_a_request_being_served() -> None:
    """`response_state` reads the request cycle uvicorn makes once a head is complete."""

    async def never_answers(scope: object, receive: object, send: object) -> None:
        await asyncio.sleep(3600)

    async def serve_one() -> None:
        config = uvicorn.Config(app=never_answers, loop="asyncio")
        config.load()
        proto = uvicorn_compat.HttpToolsProtocol(config, ServerState(), {})
        proto.connection_made(Transport())
        assert uvicorn_compat.response_state(proto) == (False, True)  # nothing asked yet
        proto.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        for name in uvicorn_compat.CYCLE_ATTRIBUTES:
            assert isinstance(getattr(proto.cycle, name), bool), name
        assert uvicorn_compat.response_state(proto) == (False, False)
        for task in list(proto.tasks):
            task.cancel()

    asyncio.run(serve_one())
