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
    "PROTOCOL_ATTRIBUTES",
    "PROTOCOL_OVERRIDES",
    "STATUS_LINE",
    "UVICORN_VERSION",
    "HttpToolsProtocol",
    "ServerWithoutSignals",
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
    "send_400_response",
    "_unset_keepalive_if_required",
)
# Seam `HttpToolsProtocol` state: what the guard reads on a live connection.
PROTOCOL_ATTRIBUTES = ("connections", "loop", "transport", "parser")


class ServerWithoutSignals(uvicorn.Server):
    """Seam `Server.capture_signals`: uvicorn without its own signal handlers, because the
    PredictorServer owns SIGTERM (it drains the batcher before the listeners go)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
