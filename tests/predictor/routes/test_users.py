"""Per-user sentiment: the summary, the route on a real predictor, and the CLI's chart."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from harness.inprocess import InProcessPredictor
from harness.servers import Predictor
from predictor.featurestore.history import HistoryEntry
from predictor.routes.users import polarity, summarise
from tests.fixtures.fake_x_api import FakeXApi
from tests.fixtures.predictor_proc import REPO
from tests.fixtures.tokens import READ, READER
from tests.fixtures.tokens import env as tokens_env

LABELS = ["negative", "neutral", "positive"]
DAY = 86_400.0
NOW = 1_800_000_000.0


def entry(days_ago: float, label: str, score: float, tweet_id: str = "") -> HistoryEntry:
    return HistoryEntry(NOW - days_ago * DAY, tweet_id or f"t{days_ago}", label, score)


def test_counts_means_and_window() -> None:
    history = [
        entry(40, "positive", 0.9),  # outside a 30-day window
        entry(25, "negative", 0.8),
        entry(15, "neutral", 0.5),
        entry(1, "positive", 0.7),
    ]
    s = summarise("amy", history, LABELS, now=NOW, window_days=30, buckets=3)
    assert s["count"] == 3
    assert s["counts"] == {"negative": 1, "neutral": 1, "positive": 1}
    assert s["mean_score"] == pytest.approx((0.8 + 0.5 + 0.7) / 3)
    assert s["mean_polarity"] == pytest.approx((-0.8 + 0 + 0.7) / 3)
    assert [b["count"] for b in s["trend"]["buckets"]] == [1, 1, 1]
    assert "points" not in s


@pytest.mark.parametrize(
    ("labels", "direction"),
    [
        (["negative", "negative", "neutral", "positive", "positive"], "rising"),
        (["positive", "positive", "neutral", "negative", "negative"], "falling"),
        (["neutral"] * 5, "flat"),
    ],
)
def test_trend_direction(labels: list[str], direction: str) -> None:
    history = [entry(25 - 5 * n, lb, 0.8) for n, lb in enumerate(labels)]
    s = summarise("amy", history, LABELS, now=NOW, window_days=30, buckets=5, points=True)
    assert s["trend"]["direction"] == direction
    assert len(s["points"]) == 5
    means = [b["mean_polarity"] for b in s["trend"]["buckets"]]
    assert means == [polarity(lb, 0.8) for lb in labels]


def test_one_instant_has_no_trend() -> None:
    s = summarise("amy", [entry(1, "positive", 0.9)], LABELS, now=NOW, window_days=7, buckets=2)
    assert s["trend"]["direction"] == "unknown" and s["trend"]["slope_per_day"] is None


# --- through a real predictor (memory backend: no Redis configured) ---------
def _iso(days_ago: float) -> str:
    t = datetime.fromtimestamp(time.time() - days_ago * DAY, UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture(scope="module")
def server(
    tiny_model_dir: Path, module_x_api: FakeXApi, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessPredictor]:
    env = {**module_x_api.env(), **tokens_env(tmp_path_factory.mktemp("users-tokens"))}
    log = tmp_path_factory.mktemp("users") / "predictor.log"
    proc = InProcessPredictor(tiny_model_dir, log, env=env).start().wait_ready()
    yield proc
    proc.stop()


def test_route_and_cli(server: Predictor, module_x_api: FakeXApi, tmp_path: Path) -> None:
    texts = ["I love it", "so bad", "ok I guess", "great great great", "terrible", "fine"]
    urls = [
        module_x_api.add(str(500 + n), text, "Frank", _iso(25 - 4 * n))
        for n, text in enumerate(texts)
    ]
    module_x_api.add("900", "someone else", "grace", _iso(1))
    resp = httpx.post(
        f"{server.url}/v1/models/sentiment:predict",
        json={"instances": [{"tweet_url": u} for u in [*urls, urls[0]]]},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    labels = [p["label"] for p in resp.json()["predictions"][:6]]
    deadline = time.monotonic() + 5  # the history lands after the response (write-behind)
    while (
        got := httpx.get(
            f"{server.url}/v1/users/frank/sentiment", params={"points": True}, headers=READ
        )
    ).status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["username"] == "frank"
    assert body["count"] == 6, "each tweet once, however often it was asked for"
    assert body["counts"] == {lb: labels.count(lb) for lb in LABELS}
    assert [p["tweet_id"] for p in body["points"]] == [str(500 + n) for n in range(6)]

    narrow = httpx.get(
        f"{server.url}/v1/users/@Frank/sentiment", params={"window_days": 10}, headers=READ
    )
    assert narrow.json()["count"] == 2  # the tweets are 25, 21, 17, 13, 9 and 5 days old

    missing = httpx.get(f"{server.url}/v1/users/nobody_here/sentiment", headers=READ)
    assert missing.status_code == 404 and "@nobody_here" in missing.json()["error"]
    bad = httpx.get(f"{server.url}/v1/users/not-a-name!/sentiment", headers=READ)
    assert bad.status_code == 400 and "not an X username" in bad.json()["error"]
    bad_window = httpx.get(
        f"{server.url}/v1/users/frank/sentiment", params={"window_days": 0}, headers=READ
    )
    assert bad_window.status_code == 400

    png = tmp_path / "frank.png"
    token_file = tmp_path / "reader-token"
    token_file.write_text(READER + "\n")
    cli = subprocess.run(
        [sys.executable, "-m", "tools.user_sentiment", "frank", "--url", server.url,
         "--png", str(png), "--token-file", str(token_file)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert '"count": 6' in cli.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    cli = subprocess.run(
        [sys.executable, "-m", "tools.user_sentiment", "nobody_here", "--url", server.url,
         "--token-file", str(token_file)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 1 and "404" in cli.stderr
