"""The one way the developer CLIs call a running predictor: JSON in, JSON out, and a
one-line error (not a traceback) when nothing listens or the server refuses."""

from __future__ import annotations

import sys
from typing import Any


class CallFailed(Exception):
    """The predictor could not be reached or answered with an error; the message says which."""


def call(method: str, url: str, *, timeout: float = 60.0, **kwargs: Any) -> Any:
    """The decoded JSON body of a 200, else CallFailed naming the URL and the reason."""
    import httpx

    try:
        resp = httpx.request(method, url, timeout=timeout, **kwargs)
    except httpx.HTTPError as exc:
        raise CallFailed(f"could not reach the predictor at {url}: {exc}") from None
    if resp.status_code != 200:
        raise CallFailed(f"{url} answered {resp.status_code}: {resp.text}")
    return resp.json()


def fail(err: CallFailed) -> int:
    """Print the failure on one line and return the CLI's exit code."""
    print(f"error: {err}", file=sys.stderr)
    return 1
