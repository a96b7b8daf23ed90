"""A request's deadline: set once at the edge, honoured where the request waits.

The edge sets it for every inference call from the server's default
(`PREDICTOR_REQUEST_TIMEOUT_S`), shortened by what the caller asks: the
`x-request-timeout` header (seconds) on REST, the call's own deadline on gRPC.
The batcher reads it when texts are submitted: past it the request is answered
504 / DEADLINE_EXCEEDED and its texts still queued never reach the model. A
context variable, because the deadline belongs to the request's task, whichever
layers (KServe's handlers among them) sit between the edge and the queue.
"""

from __future__ import annotations

import contextvars
import math
import time

from predictor.errors import BadInput

TIMEOUT_HEADER = "x-request-timeout"

# time.monotonic() by which the current request must be answered; None: no deadline
DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


def deadline_after(default_s: float, asked_s: float | None = None) -> float:
    """The monotonic deadline of a request starting now: the default, or less if asked."""
    seconds = default_s if asked_s is None else min(default_s, asked_s)
    return time.monotonic() + seconds


def parse_timeout(value: str) -> float:
    """The `x-request-timeout` header: a positive number of seconds, else a 400 naming it."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise BadInput(f"{TIMEOUT_HEADER} must be a positive number of seconds, got {value!r}")
    return seconds


def remaining() -> float | None:
    """Seconds left for the current request (may be <= 0), None without a deadline."""
    deadline = DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()
