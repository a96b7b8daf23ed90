"""The HTTP/1.1 connection layer under the REST API: limits, timeouts, JSON errors.

uvicorn's httptools protocol, with what it lacks for a server facing
hostile clients, enforced before a request reaches the application:

- a cap on the request head (request line + headers): 414 for a long target,
  431 for headers, answered as soon as the cap is passed, so a 64 MiB header
  neither buffers nor stalls the event loop;
- a header-read deadline from a request's first byte (slowloris gets 408),
  a body deadline from its last header to its last body byte (a body that
  never arrives gets 408, R-U-Dead-Yet), and an idle deadline before a new
  connection's first byte;
- a cap on open connections that makes room before it refuses: at the cap,
  a connection with no request being served is closed for the newcomer,
  first among those that have never had a request answered (stalled heads
  and bodies, connections that never spoke), the longest-open first, then
  among those that have, the one answered longest ago first (nginx closes
  its idle keep-alive connections first when it runs out, Envoy's overload
  manager shortens idle timeouts under pressure); only when every open
  connection has a complete request being served is the new one refused
  with 503, so stalled heads and bodies cannot lock innocents out;
- a JSON body, `{"error": ...}`, on every error this layer answers itself
  (uvicorn's own are `text/plain`), and an answer for `Upgrade:` requests,
  which the API does not support (uvicorn would hand them to a WebSocket
  protocol with no route, or wait forever for a body it no longer parses).

What stays with the parser: a request it cannot parse at all (bad or repeated
Content-Length, Content-Length with chunked, a bad chunk size, NUL in a header,
a garbage request line) gets 400 with the parser's reason, in JSON, and the
connection is closed; see the README's "Errors" section.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

import httptools
import orjson

from predictor.serving.uvicorn_compat import STATUS_LINE, HttpToolsProtocol, response_state
from predictor.settings import ServingSettings

log = logging.getLogger("predictor.http")


@dataclass(frozen=True)
class HttpLimits:
    """The connection-layer limits, from `ServingSettings` (see its field descriptions)."""

    max_head_bytes: int
    header_timeout_s: float
    idle_timeout_s: float
    max_connections: int
    # The setting's own default, so a server built without naming it still has the deadline.
    body_timeout_s: float = ServingSettings.model_fields["http_body_timeout_s"].default

    @classmethod
    def from_settings(cls, settings: ServingSettings, idle_timeout_s: float) -> HttpLimits:
        """Every limit from the serving settings; the idle timeout is the keep-alive in effect."""
        return cls(
            max_head_bytes=settings.http_max_head_bytes,
            header_timeout_s=settings.http_header_timeout_s,
            idle_timeout_s=idle_timeout_s,
            max_connections=settings.http_max_connections,
            body_timeout_s=settings.http_body_timeout_s,
        )


def protocol_class(limits: HttpLimits) -> type[asyncio.Protocol]:
    """uvicorn's `Config(http=...)`: the guarded protocol bound to these limits, with its own
    register of open connections (one per server)."""
    attrs = {"limits": limits, "never_answered": OrderedDict(), "answered": OrderedDict()}
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), attrs)


def error_bytes(status: int, message: str) -> bytes:
    """A complete `connection: close` HTTP/1.1 response with a JSON error body."""
    body = orjson.dumps({"error": message})
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class GuardedHttpProtocol(HttpToolsProtocol):
    """One connection; `limits` and the two registers are set on the subclass
    `protocol_class` makes."""

    limits: HttpLimits
    # This server's open connections, in the order they make room at the cap, each with
    # when it last finished something (accepted, or a response sent): those never answered
    # first (an attacker's never are), oldest first; then the answered, answered longest ago
    # first (a real client's keep-alive connection is answered again and again).
    never_answered: ClassVar[OrderedDict[GuardedHttpProtocol, float]]
    answered: ClassVar[OrderedDict[GuardedHttpProtocol, float]]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._in_head = False  # between a request's first byte and its last header
        self._in_body = False  # between its last header and the end of its body
        self._head_bytes = 0
        self._url_bytes = 0
        self._refused = False
        self._deadline: asyncio.TimerHandle | None = None
        cap = self.limits.max_connections
        if len(self.connections) > cap and not self._make_room():
            self._refuse(
                503,
                f"too many open connections (limit {cap}), each with a request being served; "
                "retry later",
            )
            return
        self.never_answered[self] = self.loop.time()
        self._arm(self.limits.idle_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.never_answered.pop(self, None)
        self.answered.pop(self, None)
        super().connection_lost(exc)

    # --- the connection cap ----------------------------------------------------
    def _serving(self) -> bool:
        """A complete request of this connection is with the application: the current cycle
        outside a body (in a head it is still the previous request's), or, in a body, an
        earlier pipelined one."""
        if self._in_body:
            return bool(self.pipeline)
        _, complete = response_state(self)
        return not complete

    def _make_room(self) -> bool:
        """Close the first connection, in the registers' order, with no request being served;
        False when every one has one (the newcomer is refused)."""
        for register in (self.never_answered, self.answered):
            for conn, since in register.items():
                if conn is not self and not conn.transport.is_closing() and not conn._serving():
                    conn._give_way(self.loop.time() - since)
                    return True
        return False

    def _give_way(self, quiet_s: float) -> None:
        """Closed for a newcomer at the cap: 408 when a request was under way (and not yet
        answered), a plain close when the connection was idle (as a keep-alive expiry)."""
        started, _ = response_state(self)
        if self._in_head or (self._in_body and not started):
            self._refuse(
                408,
                f"request not complete after {quiet_s:.1f} s while the server is at its limit "
                f"of {self.limits.max_connections} connections; closed to serve others",
            )
        else:
            self._refused = True
            self._disarm()
            self.transport.close()

    # --- deadlines ---------------------------------------------------------
    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._in_head:
            self._refuse(
                408,
                f"request headers not received within {self.limits.header_timeout_s:g} s",
            )
        elif self._in_body and not response_state(self)[0]:
            self._refuse(408, f"request body not received within {self.limits.body_timeout_s:g} s")
        else:  # a connection that never sent a byte, or a body after an early answer
            self._refused = True
            self.transport.close()

    # --- parsing -------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        was_in_head = self._in_head
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # refused already, in on_headers_complete
            self._refuse(400, _NO_UPGRADE)
            return
        except httptools.HttpParserError as exc:
            if not self._refused:
                self._refuse(400, f"malformed HTTP request: {_reason(exc)}")
            return
        if self._in_head and not self._refused:
            # Bytes of a head still incomplete after this chunk; the first chunk of a
            # pipelined request is counted whole (its start is not known), never less.
            self._head_bytes += len(data) if was_in_head or self._head_bytes == 0 else 0
            self._check_head()

    def _check_head(self) -> None:
        cap = self.limits.max_head_bytes
        if self._url_bytes > cap:
            self._refuse(414, f"request target is longer than the limit of {cap} bytes")
        elif self._head_bytes > cap:
            self._refuse(431, f"request headers exceed the limit of {cap} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._url_bytes = 0
        self._arm(self.limits.header_timeout_s)

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > self.limits.max_head_bytes:
            self._check_head()
            raise _Stop
        super().on_url(url)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        if self.parser.should_upgrade():
            self._refuse(400, _NO_UPGRADE)
            raise _Stop
        super().on_headers_complete()
        # The body's deadline; a request without one completes in this same parser call.
        self._in_body = True
        self._arm(self.limits.body_timeout_s)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self.never_answered.pop(self, None) is not None or self in self.answered:
            self.answered[self] = self.loop.time()
            self.answered.move_to_end(self)
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, msg)

    def _refuse(self, status: int, message: str) -> None:
        """Answer with a JSON error and close, whatever state the connection is in."""
        self._refused = True
        self._disarm()
        log.info("connection refused: %d %s", status, message, extra={"status": status})
        if not self.transport.is_closing():
            self.transport.write(error_bytes(status, message))
            self.transport.close()


_NO_UPGRADE = (
    "protocol upgrades (Upgrade: websocket, h2c, ...) are not supported; send plain "
    "HTTP/1.1 requests without the Upgrade header"
)


class _Stop(Exception):
    """Raised from a parser callback to stop parsing a request already refused."""


def _reason(exc: Exception) -> str:
    """The parser's reason, without httptools' exception class names."""
    text = str(exc) or type(exc).__name__
    return text.removeprefix("HPE_").replace("_", " ").lower() if text.isupper() else text
