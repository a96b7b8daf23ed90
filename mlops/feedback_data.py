"""Production feedback for the loop: where to read it, what it says, and training rows from it.

Sources (`--feedback`): a feature-store URL (`redis://`, `rediss://`,
`redis+sentinel://`, `redis+cluster://`, a plugin's scheme: the list `keys.feedback_key`
read through the predictor's own backend, mlops.store), `http(s)://predictor` (the predictor's
`GET /v1/models/<name>/feedback`, which works with any backend), or a file of
JSON lines (CI, or a copy). Each record is the one `predictor.featurestore.feedback_log`
writes. Training rows keep one label per text per writer (the writer token's id in the
record; a re-post replaces the label, it adds no weight), then one row per text: the label
most writers gave, the newest among a tie. The accuracy signal is agree / all for one
served version, read from Prometheus (every pod, any window).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mlops.prom import Prometheus, selector
from mlops.store import is_store_url, read_list, store_settings
from predictor.featurestore import keys
from predictor.featurestore.feedback_log import FeedbackRecord, live_records

FEEDBACK_COUNTER = "predictor_feedback_total"


class FeedbackError(RuntimeError):
    """The feedback source could not be read."""


def read_records(
    source: str,
    model: str,
    ttl_s: float,
    key_prefix: str | None = None,
    limit: int = 100_000,
    token_file: Path | None = None,
) -> list[FeedbackRecord]:
    """Every record within `ttl_s` from `source`, oldest first. A store URL is read with the
    predictor's own backend and settings (mlops.store): its topologies, password files, TLS
    and PREDICTOR_KEY_PREFIX (or `key_prefix`); a predictor URL with a reader token read
    from `token_file` (the route needs one)."""
    raw: list[bytes]
    try:
        if is_store_url(source):
            raw = read_list(store_settings(source, key_prefix), keys.feedback_key(model), limit)
        elif source.startswith(("http://", "https://")):
            import httpx

            headers = {}
            if token_file is not None:
                headers["Authorization"] = f"Bearer {first_token(token_file)}"
            resp = httpx.get(
                f"{source.rstrip('/')}/v1/models/{model}/feedback",
                params={"limit": limit},
                headers=headers,
                timeout=30,
            )
            resp.raise_for_status()
            raw = resp.content.splitlines()
        else:
            raw = Path(source).read_bytes().splitlines()
    except Exception as exc:  # store, httpx and OS errors alike: the source is unusable
        raise FeedbackError(f"feedback source {_safe(source)}: {type(exc).__name__}: "
                            f"{exc}") from exc  # fmt: skip
    return live_records(raw, ttl_s)


def first_token(path: Path) -> str:
    """The first token of a token file (one per line, as the predictor reads them)."""
    return next((t.strip() for t in path.read_text().splitlines() if t.strip()), "")


def _safe(source: str) -> str:
    """The source as it may be logged: a password in a URL is masked."""
    parts = urlsplit(source)
    if parts.password:
        return source.replace(f":{parts.password}@", ":***@")
    return source


@dataclass(frozen=True)
class TrainingRows:
    """The rows handed to `training.build --extra-rows`, and their fingerprint."""

    rows: list[dict[str, str]]
    records: int = 0  # records read (with the labels outside the model's)
    reposts: int = 0  # records replaced by a newer label of the same writer for the same text
    writers: int = 0

    @property
    def sha256(self) -> str:
        """Same rows, same fingerprint: the loop's notion of "new evidence"."""
        blob = json.dumps(self.rows, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def write(self, path: Path) -> Path:
        path.write_text("".join(json.dumps(r) + "\n" for r in self.rows), encoding="utf-8")
        return path


def training_rows(records: list[FeedbackRecord], labels: list[str]) -> TrainingRows:
    """One row per distinct text, sorted by text hash for a stable order: each writer's
    newest label for it counts once, and the label most writers gave wins (the newest of
    a tie). Records from before writers were named count as one writer."""
    latest: dict[tuple[str | None, str], FeedbackRecord] = {}
    reposts = 0
    for r in sorted((r for r in records if r.label in labels), key=lambda r: r.t):
        key = (r.writer, r.text_sha256)
        reposts += key in latest
        latest[key] = r
    by_text: dict[str, list[FeedbackRecord]] = {}
    for r in latest.values():
        by_text.setdefault(r.text_sha256, []).append(r)
    rows = []
    for text_sha in sorted(by_text):
        votes = by_text[text_sha]
        counts = {lb: sum(v.label == lb for v in votes) for lb in {v.label for v in votes}}
        top = max(counts.values())
        winner = max((v for v in votes if counts[v.label] == top), key=lambda v: v.t)
        rows.append({"text": winner.text, "label": winner.label})
    writers = len({w for w, _ in latest})
    return TrainingRows(rows, records=len(records), reposts=reposts, writers=writers)


@dataclass(frozen=True)
class Accuracy:
    """How often feedback agreed with what one version served, over a window."""

    version: str
    total: float
    agree: float

    @property
    def ratio(self) -> float | None:
        return self.agree / self.total if self.total > 0 else None


def live_accuracy(prom: Prometheus, model: str, version: str, window: str) -> Accuracy:
    """Feedback agreement of `version` over `window`, all pods summed. Both verdicts come
    from one query, so agree never exceeds the total however increase() extrapolates."""
    sel = selector(model=model, version=version)
    rows = prom.vector(f"sum by (verdict) (increase({FEEDBACK_COUNTER}{sel}[{window}]))")
    by = {m.get("verdict", ""): v for m, v in rows}
    return Accuracy(version, sum(by.values()), by.get("agree", 0.0))
