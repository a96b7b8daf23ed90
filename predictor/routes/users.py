"""Per-user sentiment: the route `GET /v1/users/{username}/sentiment`.

Every prediction of a tweet with a known author is appended to that user's
history by the write-behind (predictor.featurestore.history). This module
only reads: counts per label, mean score, and a trend over a window, where
each prediction counts as +score (positive), -score (negative) or 0. The
command-line client and its chart live outside the serving package
(`python -m tools.user_sentiment`), so the image needs no matplotlib.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from predictor.errors import BadInput, NotFound
from predictor.featurestore.history import HistoryEntry, UserHistory
from predictor.routes.auth import Credential, guard

USERNAME = re.compile(r"^@?(?P<name>[A-Za-z0-9_]{1,15})$")
FLAT_PER_DAY = 0.01  # |slope| below this (polarity units per day) is "flat"
DAY_S = 86_400.0


def polarity(label: str, score: float) -> float:
    """+score for positive, -score for negative, 0 for anything else."""
    return {"positive": score, "negative": -score}.get(label, 0.0)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _slope_per_day(entries: Sequence[HistoryEntry]) -> float | None:
    """Least-squares slope of polarity against time; None with fewer than two instants."""
    if len({e.t for e in entries}) < 2:
        return None
    xs = [e.t / DAY_S for e in entries]
    ys = [polarity(e.label, e.score) for e in entries]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def summarise(
    username: str,
    history: Sequence[HistoryEntry],
    labels: Sequence[str],
    *,
    now: float,
    window_days: float,
    buckets: int,
    points: bool = False,
) -> dict[str, Any]:
    """The route's answer for one user's history (oldest first)."""
    start = now - window_days * DAY_S
    inside = [e for e in history if start <= e.t <= now]
    counts = dict.fromkeys(labels, 0)
    for e in inside:
        counts[e.label] = counts.get(e.label, 0) + 1
    width = (now - start) / buckets
    series = []
    for b in range(buckets):
        lo, hi = start + b * width, start + (b + 1) * width
        chunk = [e for e in inside if lo <= e.t < hi or (b == buckets - 1 and e.t == hi)]
        series.append(
            {
                "start": _iso(lo),
                "end": _iso(hi),
                "count": len(chunk),
                "mean_polarity": _mean([polarity(e.label, e.score) for e in chunk]),
            }
        )
    slope = _slope_per_day(inside)
    if slope is None:
        direction = "unknown"
    elif abs(slope) < FLAT_PER_DAY:
        direction = "flat"
    else:
        direction = "rising" if slope > 0 else "falling"
    out: dict[str, Any] = {
        "username": username,
        "window": {"days": window_days, "start": _iso(start), "end": _iso(now)},
        "count": len(inside),
        "counts": counts,
        "mean_score": _mean([e.score for e in inside]),
        "mean_polarity": _mean([polarity(e.label, e.score) for e in inside]),
        "trend": {"slope_per_day": slope, "direction": direction, "buckets": series},
    }
    if points:
        out["points"] = [
            {"t": _iso(e.t), "tweet_id": e.tweet_id, "label": e.label, "score": e.score}
            for e in inside
        ]
    return out


Labels = Callable[[], Sequence[str]]


def router(history: UserHistory, labels: Labels, readers: Credential | None) -> APIRouter:
    """The users route over `history`; `labels()` gives the loaded model's labels. A user's
    history is what they wrote: the route needs a reader token, and is off without one."""
    api = APIRouter()
    reader = guard(
        readers,
        "user_history",
        "per-user history is off on this server (no reader token is configured)",
    )

    @api.get("/v1/users/{username}/sentiment", dependencies=[Depends(reader)])
    async def user_sentiment(
        username: str,
        window_days: float = Query(30.0, gt=0, le=3650),
        buckets: int = Query(10, ge=1, le=200),
        points: bool = Query(False),
    ) -> Response:
        match = USERNAME.match(username)
        if match is None:
            raise BadInput(
                f"username {username!r} is not an X username (1-15 letters, digits or _)"
            )
        name = match.group("name")
        entries = await history.read(name)
        if not entries:
            raise NotFound(f"no predictions recorded for @{name}")
        body = summarise(
            name,
            entries,
            labels(),
            now=time.time(),
            window_days=window_days,
            buckets=buckets,
            points=points,
        )
        return Response(orjson.dumps(body), media_type="application/json")

    return api
