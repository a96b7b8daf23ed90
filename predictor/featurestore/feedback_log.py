"""Production feedback: labelled texts that say what the served model should have answered.

Each record is one list entry under `keys.feedback_key(model)`, appended through
the backend's capped expiring list (RPUSH + LTRIM + EXPIRE on Redis), so the log
is bounded by `feedback_max_entries` and forgotten `feedback_ttl_seconds` after
the last write; records older than the TTL are also skipped on read. Writes
leave the request path through the store's one write-behind queue, with
feedback's own cap and TTL (not the prediction cache's).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass

import orjson
from prometheus_client import Counter
from pydantic import Field

from predictor.featurestore import keys
from predictor.featurestore.store import FeatureStore
from predictor.featurestore.writer import WriteOp
from predictor.metrics import ModelSeries
from predictor.settings_base import PredictorSettings

NINETY_DAYS_S = 90 * 24 * 3600

FEEDBACK_DROPPED = ModelSeries(
    Counter(
        "predictor_feedback_dropped_total",
        "Feedback records not stored: write queue full, breaker open or backend failure.",
        ["model", "version"],
    )
)


class FeedbackSettings(PredictorSettings):
    """How much production feedback is kept, and for how long."""

    feedback_enabled: bool = Field(
        True, description="Serve POST /v1/models/{name}/feedback and store what it receives."
    )
    feedback_ttl_seconds: int = Field(
        NINETY_DAYS_S,
        ge=1,
        description="Feedback older than this is not used (and the log expires this long "
        "after its last write). Longer than the cache TTL: labels stay true after a "
        "prediction is forgotten.",
    )
    feedback_max_entries: int = Field(
        100_000,
        ge=1,
        description="Most feedback records kept per model; the oldest drop first.",
    )


def text_hash(text: str) -> str:
    """sha256 of the normalised text: what the same text sent twice has in common."""
    return hashlib.sha256(keys.normalise_text(text).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FeedbackRecord:
    """One label from production, beside what the served model answered for the same text."""

    text_sha256: str
    text: str  # normalised and cut to the character cap, as the model saw it
    label: str
    version: str  # the model version that served the prediction
    predicted: str
    score: float
    t: float  # Unix seconds
    request_id: str | None = None
    tweet_id: str | None = None
    truncated: bool = False
    writer: str | None = None  # the writer token's id (predictor.routes.auth.writer_id)

    @property
    def agrees(self) -> bool:
        return self.label == self.predicted

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes) -> FeedbackRecord | None:
        """A record, or None for anything that does not decode (never an error)."""
        try:
            d = orjson.loads(raw)
            return cls(
                str(d["text_sha256"]), str(d["text"]), str(d["label"]), str(d["version"]),
                str(d["predicted"]), float(d["score"]), float(d["t"]),
                None if d.get("request_id") is None else str(d["request_id"]),
                None if d.get("tweet_id") is None else str(d["tweet_id"]),
                bool(d.get("truncated", False)),
                None if d.get("writer") is None else str(d["writer"]),
            )  # fmt: skip
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


class FeedbackLog:
    """Appends to, and reads of, one model's feedback list, through the store's front door:
    its one write-behind queue (flushed by the drain), breaker and health."""

    def __init__(self, store: FeatureStore, model: str, settings: FeedbackSettings) -> None:
        self.store = store
        self.model = model
        self.settings = settings
        self.key = keys.feedback_key(model)

    def record(self, rec: FeedbackRecord) -> None:
        """Queue one record for after the response; a record not stored (queue full, store
        down) is counted in predictor_feedback_dropped_total."""
        op = WriteOp(
            self.model,
            rec.version,
            history={self.key: [rec.encode()]},
            list_limits=(self.settings.feedback_max_entries, self.settings.feedback_ttl_seconds),
            dropped=FEEDBACK_DROPPED.labels(self.model, rec.version).inc,
        )
        self.store.write(op)

    async def read(
        self, limit: int | None = None, now: float | None = None
    ) -> list[FeedbackRecord]:
        """Stored records within the TTL, oldest first (503 when the store is unavailable)."""
        raw = await self.store.read_history(self.key, limit or self.settings.feedback_max_entries)
        return live_records(raw, self.settings.feedback_ttl_seconds, now)


def live_records(raw: list[bytes], ttl_s: float, now: float | None = None) -> list[FeedbackRecord]:
    """Decoded records younger than `ttl_s`, oldest first; undecodable entries skipped."""
    cutoff = (time.time() if now is None else now) - ttl_s
    out = [r for r in map(FeedbackRecord.decode, raw) if r is not None]
    return [r for r in out if r.t >= cutoff]
