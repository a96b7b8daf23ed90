"""Every reach into uvicorn's internals, fenced in one module.

The connection layer (`http_guard`) subclasses uvicorn's httptools protocol,
which is not a public API, and the server owns SIGTERM, which uvicorn would
otherwise take. Each reach is a named seam here with a test in
`tests/predictor/serving/test_uvicorn_compat.py`, so an upgrade that moves
one of them fails there, by name, instead of silently dropping a guard (an
override whose base method was renamed is simply never called).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from importlib.metadata import version

import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

# The release these seams were written and tested against (requirements.txt pins it).
UVICORN_VERSION = "0.54.0"
INSTALLED_VERSION = version("uvicorn")

__all__ = [
    "CYCLE_ATTRIBUTES",
    "PROTOCOL_ATTRIBUTES",
    "PROTOCOL_OVERRIDES",
    "STATUS_LINE",
    "UVICORN_VERSION",
    "HttpToolsProtocol",
    "ServerWithoutSignals",
    "response_state",
]

# Seam `HttpToolsProtocol` overrides: the methods `GuardedHttpProtocol` replaces or calls.
# `send_400_response` is uvicorn's own answer to a parse error (plain text); ours is JSON.
PROTOCOL_OVERRIDES = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_url",
    "on_headers_complete",
    "on_message_complete",
    "on_response_complete",
    "send_400_response",
    "_unset_keepalive_if_required",
)
# Seam `HttpToolsProtocol` state: what the guard reads on a live connection.
PROTOCOL_ATTRIBUTES = ("connections", "loop", "transport", "parser", "cycle", "pipeline")
# Seam `RequestResponseCycle` state: whether the application has begun / finished answering
# the connection's current request (the guard must not write a 408 into a started response,
# nor close a connection whose complete request is being served).
CYCLE_ATTRIBUTES = ("response_started", "response_complete")


def response_state(protocol: HttpToolsProtocol) -> tuple[bool, bool]:
    """(started, complete) of the current request's response; (False, True) before the first
    request, when there is nothing to answer."""
    cycle = protocol.cycle
    if cycle is None:
        return False, True
    return bool(cycle.response_started), bool(cycle.response_complete)


class ServerWithoutSignals(uvicorn.Server):
    """Seam `Server.capture_signals`: uvicorn without its own signal handlers, because the
    PredictorServer owns SIGTERM (it drains the batcher before the listeners go)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
