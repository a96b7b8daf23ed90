"""`POST /v1/models/{name}/feedback`: production labels for what the model answered.

Body: `{"text": ..., "label": ...}` or `{"tweet_url": ..., "label": ...}`, with an
optional `"request_id"` (the x-request-id of the prediction it corrects). The
label must be one of the model card's; the text is cut to the character cap and
normalised exactly as for predict, and the served model's answer for it is taken
through the same predict path (cache first), so the record holds both what was
said and what should have been said. Storage is write-behind
(`predictor.featurestore.feedback_log`); the answer is 202 Accepted.

`GET /v1/models/{name}/feedback?limit=N` returns the stored records (newest N,
oldest first) as JSON lines, so `mlops.cycle` can read feedback from any backend.

Writing needs a writer token and reading a reader token (`predictor.routes.auth`);
each route is off (404) while its token file is not configured. Every record
carries its writer's id, and the loop keeps one label per text per writer
(`mlops.feedback_data`), so posting the same text again replaces the label and
adds no weight.

Metrics: `predictor_feedback_total{model,version,label,verdict}` where verdict is
`agree` or `disagree` with the served prediction; agree / all over a window is a
live accuracy signal (dashboard panel and alert PredictorFeedbackAccuracyLow).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from prometheus_client import Counter

from predictor.errors import BadInput, NotFound
from predictor.featurestore import keys
from predictor.featurestore.feedback_log import (
    FEEDBACK_DROPPED,
    FeedbackLog,
    FeedbackRecord,
    text_hash,
)
from predictor.metrics import ModelSeries
from predictor.model import SentimentModel
from predictor.protocol import Instance
from predictor.routes.auth import RouteTokens, guard
from predictor.serving.logs import CLIENT_REQUEST_ID, REQUEST_ID

FEEDBACK = ModelSeries(
    Counter(
        "predictor_feedback_total",
        "Feedback labels received, by label and whether the served model agreed "
        "(verdict agree|disagree): agree / all is live accuracy.",
        ["model", "version", "label", "verdict"],
    )
)
# By writer (the token's id, never the token): who writes how much, so one writer's flood
# shows on a dashboard; the number of writers is the number of tokens, a handful.
FEEDBACK_BY_WRITER = Counter(
    "predictor_feedback_by_writer_total",
    "Feedback labels accepted, by model and writer (the writer token's id).",
    ["model", "writer"],
)
FIELDS = {"text", "tweet_url", "label", "request_id"}


def _string(body: dict[str, Any], name: str) -> str:
    value = body[name]
    if not isinstance(value, str):
        raise BadInput(f'"{name}" must be a string, got {type(value).__name__}')
    if not value.strip():
        raise BadInput(f'"{name}" is an empty string')
    return value


def parse_body(raw: bytes, labels: list[str]) -> tuple[Instance, str, str | None]:
    """(what was classified, its true label, the request id it corrects) or BadInput."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadInput(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadInput('request body must be a JSON object with "label" and "text" or "tweet_url"')
    extra = sorted(set(body) - FIELDS)
    if extra:
        raise BadInput(f"unexpected field(s) {', '.join(extra)}; feedback takes {sorted(FIELDS)}")
    given = [k for k in ("text", "tweet_url") if k in body]
    if len(given) != 1:
        got = given or "none"
        raise BadInput(f'feedback needs exactly one of "text" or "tweet_url", got {got}')
    if "label" not in body:
        raise BadInput('missing field "label"')
    label = _string(body, "label")
    if label not in labels:
        raise BadInput(f"unknown label {label!r}; the model's labels are {labels}")
    request_id = None
    if body.get("request_id") is not None:
        request_id = _string(body, "request_id")
        if not CLIENT_REQUEST_ID.fullmatch(request_id):
            raise BadInput('"request_id" must be 1-128 letters, digits or ._:-')
    if given == ["text"]:
        return Instance(text=_string(body, "text")), label, request_id
    return Instance(tweet_url=_string(body, "tweet_url")), label, request_id


def router(model: SentimentModel, log: FeedbackLog, tokens: RouteTokens) -> APIRouter:
    """The feedback routes for `model`, storing through `log` (the feature store's own
    write-behind, which the model's drain flushes), guarded by `tokens`."""
    writer = guard(
        tokens.writers,
        "feedback_write",
        "feedback is not taken on this server (no writer token is configured)",
    )
    reader = guard(
        tokens.readers,
        "feedback_read",
        "stored feedback is not readable on this server (no reader token is configured)",
    )

    def zero_series() -> None:
        """Every label x verdict series from the first scrape after load, at 0, so the
        first labels of a version count in increase() (the model loads after the bind)."""
        for label in model.labels:
            for verdict in ("agree", "disagree"):
                FEEDBACK.labels(model.name, model.version, label, verdict)
        FEEDBACK_DROPPED.labels(model.name, model.version)

    model.on_ready.append(zero_series)
    api = APIRouter()

    def check_name(name: str) -> None:
        if name != model.name:
            raise NotFound(f"model {name} does not exist; this server serves {model.name}")

    @api.post("/v1/models/{name}/feedback", status_code=202)
    async def feedback(name: str, request: Request) -> Response:
        who = writer(request)  # before anything of the body is read
        check_name(name)
        inst, label, request_id = parse_body(await request.body(), model.labels)
        # what the served model answers for it, through the same path as :predict
        (seen,) = await model.classify([inst])
        kept, served = keys.normalise_text(seen.text), seen.prediction
        if not kept:  # a fetched tweet can be all whitespace (a literal one is refused above)
            raise BadInput("the text is empty once whitespace is normalised")
        tweet_id = seen.tweet.tweet.id if seen.tweet is not None else None
        version = model.version
        rec = FeedbackRecord(
            text_hash(kept), kept, label, version, served.label, served.score, time.time(),
            request_id, tweet_id, served.truncated, who,
        )  # fmt: skip
        log.record(rec)
        verdict = "agree" if rec.agrees else "disagree"
        FEEDBACK.labels(model.name, version, label, verdict).inc()
        FEEDBACK_BY_WRITER.labels(model.name, who).inc()
        body = {
            "accepted": True,
            "model": model.name,
            "version": version,
            "label": label,
            "predicted": served.label,
            "agrees": rec.agrees,
            "text_sha256": rec.text_sha256,
            "truncated": rec.truncated,
            "request_id": REQUEST_ID.get(),
        }
        return Response(orjson.dumps(body), status_code=202, media_type="application/json")

    @api.get("/v1/models/{name}/feedback", dependencies=[Depends(reader)])
    async def list_feedback(
        name: str,
        limit: int = Query(1000, ge=1, le=100_000),
    ) -> Response:
        check_name(name)
        records = await log.read(limit)
        lines = b"".join(r.encode() + b"\n" for r in records)
        return Response(lines, media_type="application/x-ndjson")

    return api
