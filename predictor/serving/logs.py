"""Structured JSON logs carrying the id of the request being served.

The request id lives in a context variable set at the edge (REST middleware or
gRPC interceptor), so every line logged while serving that request carries it
without threading it through call signatures.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time

import orjson

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# A client's request id is kept only if it is short and plain, so it cannot bloat or forge
# log lines (the edge's x-request-id, and the id a feedback body names).
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

_STD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = REQUEST_ID.get()
        if rid is not None:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # a string UTF-8 cannot encode (a client's lone surrogate)
            return orjson.dumps(_scrub(entry), default=str).decode()


def _scrub(value: object) -> object:
    """The value with every string made encodable (unencodable characters escaped), so one
    hostile string never costs the log line it is in."""
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def configure(level: str = "INFO") -> None:
    """Route our, KServe's and uvicorn's loggers to one JSON stream on stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("kserve", "uvicorn", "uvicorn.error", "grpc"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    # Replaced by our access log (predictor.serving.edge), which skips health and metrics.
    for name in ("uvicorn.access", "kserve.trace"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = False
        lg.disabled = True
