"""Bearer tokens for the routes that write training data or read stored texts.

Inference stays as open as KServe serves it (authenticating it is the mesh's job),
but `POST /v1/models/{name}/feedback` steers the next retrain, and the feedback
list and per-user histories hold what people wrote. Each of those routes needs a
token read from a mounted file (a Secret volume, as the Redis password is): one
file for writers, one for readers, one token per line, so a token is never in an
env var, a command line or a log line. A route whose file is not configured is
off (404), never open. Tokens are compared in constant time (hmac.compare_digest
over SHA-256 digests, so neither content nor length leaks through timing), and
every token is checked, so which one matched does not leak either.

A writer is known by its token's fingerprint (`writer_id`), which the feedback
record stores: one label per text per writer, however often it is posted.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from prometheus_client import Counter
from pydantic import Field

from predictor.errors import Forbidden, NotFound, Unauthorized
from predictor.settings_base import PredictorSettings

MIN_TOKEN_CHARS = 16

AUTH = Counter(
    "predictor_route_auth_total",
    "Credential checks of the token-guarded routes, by route (feedback_write, feedback_read, "
    "user_history) and result (ok, missing, wrong, off).",
    ["route", "result"],
)


class ApiTokenSettings(PredictorSettings):
    """Which files hold the bearer tokens of the guarded routes."""

    feedback_writer_tokens_file: Path | None = Field(
        None,
        description="File of bearer tokens (one per line, at least 16 characters) that may "
        "POST /v1/models/{name}/feedback, e.g. a mounted Secret. Unset: the route is off "
        "(404).",
    )
    reader_tokens_file: Path | None = Field(
        None,
        description="File of bearer tokens that may read stored texts: GET "
        "/v1/models/{name}/feedback and GET /v1/users/{username}/sentiment. Unset: both "
        "are off (404).",
    )


class TokenFileError(ValueError):
    """A configured token file that cannot be used (missing, empty, a token too short)."""


def writer_id(token: bytes) -> str:
    """A writer's stable, non-secret name: the start of its token's SHA-256."""
    return "w-" + hashlib.sha256(token).hexdigest()[:16]


@dataclass(frozen=True)
class Credential:
    """The tokens of one role; `check` answers who presented one, or raises 401 / 403."""

    role: str  # "writer" or "reader", for the messages
    digests: tuple[bytes, ...]
    ids: tuple[str, ...]

    @classmethod
    def from_file(cls, role: str, path: Path) -> Credential:
        try:
            lines = path.read_bytes().splitlines()
        except OSError as exc:
            raise TokenFileError(f"{role} token file {path}: {exc.strerror}") from None
        tokens = [t.strip() for t in lines if t.strip()]
        if not tokens:
            raise TokenFileError(f"{role} token file {path} holds no token")
        for n, token in enumerate(tokens, 1):
            if len(token) < MIN_TOKEN_CHARS:  # the token itself is never quoted
                raise TokenFileError(
                    f"{role} token {n} in {path} is shorter than {MIN_TOKEN_CHARS} characters"
                )
        digests = tuple(hashlib.sha256(t).digest() for t in tokens)
        return cls(role, digests, tuple(writer_id(t) for t in tokens))

    def check(self, authorization: str | None) -> str:
        """The id of the token in an `Authorization: Bearer ...` header."""
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise Unauthorized(f"this route needs a {self.role} token: Authorization: Bearer ...")
        digest = hashlib.sha256(given.strip().encode("utf-8", "surrogateescape")).digest()
        found = None
        for stored, ident in zip(self.digests, self.ids, strict=True):
            if hmac.compare_digest(stored, digest) and found is None:
                found = ident
        if found is None:
            raise Forbidden(f"the bearer token is not a {self.role} token of this server")
        return found


@dataclass(frozen=True)
class RouteTokens:
    """The credentials of the guarded routes, read once by the composition root; None is a
    route that is off."""

    writers: Credential | None = None
    readers: Credential | None = None

    @classmethod
    def load(cls, settings: ApiTokenSettings) -> RouteTokens:
        w, r = settings.feedback_writer_tokens_file, settings.reader_tokens_file
        return cls(
            writers=Credential.from_file("writer", w) if w is not None else None,
            readers=Credential.from_file("reader", r) if r is not None else None,
        )


Guard = Callable[[Request], str]


def guard(credential: Credential | None, route: str, off: str) -> Guard:
    """A FastAPI dependency for one route: the caller's token id, 401 without a token, 403
    with a wrong one, 404 (`off`) when no token file is configured."""

    def check(request: Request) -> str:
        if credential is None:
            AUTH.labels(route, "off").inc()
            raise NotFound(off)
        try:
            who = credential.check(request.headers.get("authorization"))
        except Unauthorized:
            AUTH.labels(route, "missing").inc()
            raise
        except Forbidden:
            AUTH.labels(route, "wrong").inc()
            raise
        AUTH.labels(route, "ok").inc()
        return who

    return check
