"""Feedback route in a real predictor process with a real Redis (and a fake X API)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.inprocess import InProcessPredictor
from harness.scrape import sample_sum
from harness.servers import Predictor
from predictor.featurestore import keys
from predictor.featurestore.feedback_log import FeedbackRecord, live_records, text_hash
from predictor.routes.auth import writer_id
from tests.fixtures.fake_x_api import FakeXApi
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.tokens import READ, READER, SECOND_WRITER, WRITE, WRITER, bearer
from tests.fixtures.tokens import env as tokens_env

MAX_ENTRIES = 5
TTL = 120
MAX_CHARS = 64
FEEDBACK_KEY = "tss:" + keys.feedback_key("sentiment")


@pytest.fixture(scope="module")
def server(
    tiny_model_dir: Path,
    module_redis: RedisServer,
    module_x_api: FakeXApi,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[InProcessPredictor]:
    tokens = tokens_env(tmp_path_factory.mktemp("tokens"))
    env = {
        **tokens,
        "PREDICTOR_REDIS_URL": module_redis.url(),
        **module_x_api.env(),
        "PREDICTOR_FEEDBACK_MAX_ENTRIES": str(MAX_ENTRIES),
        "PREDICTOR_FEEDBACK_TTL_SECONDS": str(TTL),
        "PREDICTOR_MAX_TEXT_CHARS": str(MAX_CHARS),
    }
    log = tmp_path_factory.mktemp("feedback") / "predictor.log"
    proc = InProcessPredictor(tiny_model_dir, log, env=env).start().wait_ready()
    yield proc
    proc.stop()


def send(
    server: Predictor,
    body: object,
    name: str = "sentiment",
    headers: dict[str, str] = WRITE,
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/models/{name}/feedback", json=body, headers=headers, timeout=30
    )


def predict(server: Predictor, text: str) -> dict[str, object]:
    resp = httpx.post(
        f"{server.url}/v1/models/sentiment:predict", json={"instances": [text]}, timeout=30
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json()["predictions"][0])


def stored(redis: RedisServer) -> list[FeedbackRecord]:
    raw = redis.client().lrange(FEEDBACK_KEY, 0, -1)
    return [
        r
        for r in (FeedbackRecord.decode(v if isinstance(v, bytes) else v.encode()) for v in raw)
        if r is not None
    ]


def wait_stored(redis: RedisServer, n: int, timeout: float = 10.0) -> list[FeedbackRecord]:
    """Write-behind lands after the 202: poll Redis for it."""
    deadline = time.monotonic() + timeout
    while len(found := stored(redis)) < n:
        assert time.monotonic() < deadline, f"{len(found)} of {n} feedback records stored"
        time.sleep(0.05)
    return found


@pytest.fixture
def empty(module_redis: RedisServer) -> RedisServer:
    module_redis.client().delete(FEEDBACK_KEY)
    return module_redis


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"text": "great phone", "label": "ecstatic"}, "unknown label 'ecstatic'"),
        ({"text": "", "label": "positive"}, '"text" is an empty string'),
        ({"text": "   \n ", "label": "positive"}, '"text" is an empty string'),
        ({"text": "great", "label": 3}, '"label" must be a string'),
        ({"text": "great"}, 'missing field "label"'),
        ({"label": "positive"}, 'exactly one of "text" or "tweet_url"'),
        ({"text": "a", "tweet_url": "https://x.com/a/status/1", "label": "positive"}, "exactly"),
        ({"text": "great", "label": "positive", "score": 1}, "unexpected field(s) score"),
        ({"tweet_url": "https://example.com/a/status/1", "label": "negative"}, "x.com"),
        ({"tweet_url": "https://x.com/someone/likes", "label": "negative"}, "not a tweet URL"),
        ({"text": "great", "label": "positive", "request_id": "bad id!"}, '"request_id"'),
        (["great", "positive"], "JSON object"),
    ],
)
def test_bad_feedback_is_a_400_naming_the_problem(
    server: Predictor, empty: RedisServer, body: object, problem: str
) -> None:
    resp = send(server, body)
    assert resp.status_code == 400, resp.text
    assert problem in resp.json()["error"]
    time.sleep(0.2)
    assert stored(empty) == []


def test_unknown_model_and_oversized_body(server: Predictor) -> None:
    assert send(server, {"text": "x", "label": "positive"}, "other").status_code == 404
    big = httpx.post(
        f"{server.url}/v1/models/sentiment/feedback",
        content=b'{"text": "' + b"a" * 5_000_000 + b'", "label": "positive"}',
        timeout=30,
    )
    assert big.status_code == 413
    assert "error" in big.json()


def test_a_record_holds_the_label_and_the_served_answer(
    server: Predictor, empty: RedisServer
) -> None:
    text = f"  the   battery died   again {time.monotonic_ns()} "
    served = predict(server, text)
    wrong = next(lb for lb in ("negative", "neutral", "positive") if lb != served["label"])
    resp = send(server, {"text": text, "label": wrong, "request_id": "req-42"})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["predicted"] == served["label"] and body["agrees"] is False
    (rec,) = wait_stored(empty, 1)
    normalised = keys.normalise_text(text)
    assert rec.text == normalised and rec.text_sha256 == text_hash(normalised)
    assert (rec.label, rec.predicted, rec.request_id) == (wrong, served["label"], "req-42")
    assert rec.version == body["version"] and rec.score == pytest.approx(served["score"])
    assert abs(rec.t - time.time()) < 60


def test_too_long_text_is_cut_like_predict(server: Predictor, empty: RedisServer) -> None:
    text = "word " * 100
    resp = send(server, {"text": text, "label": "neutral"})
    assert resp.status_code == 202 and resp.json()["truncated"] is True
    (rec,) = wait_stored(empty, 1)
    assert rec.truncated and rec.text == keys.normalise_text(text[:MAX_CHARS])


def test_tweet_url_feedback_stores_the_tweet_text(
    server: Predictor, empty: RedisServer, module_x_api: FakeXApi
) -> None:
    url = module_x_api.add("981", "what a lovely morning in the park", "walker")
    resp = send(server, {"tweet_url": url, "label": "positive"})
    assert resp.status_code == 202, resp.text
    (rec,) = wait_stored(empty, 1)
    assert rec.text == "what a lovely morning in the park" and rec.tweet_id == "981"


def test_the_log_keeps_only_the_newest_records_and_expires(
    server: Predictor, empty: RedisServer
) -> None:
    for n in range(MAX_ENTRIES + 3):
        assert send(server, {"text": f"record number {n}", "label": "neutral"}).status_code == 202
    deadline = time.monotonic() + 10
    while (found := stored(empty))[-1:] and found[-1].text != f"record number {MAX_ENTRIES + 2}":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [r.text for r in found] == [f"record number {n}" for n in range(3, MAX_ENTRIES + 3)]
    assert 0 < empty.client().ttl(FEEDBACK_KEY) <= TTL
    listed = httpx.get(
        f"{server.url}/v1/models/sentiment/feedback?limit=2", headers=READ, timeout=10
    )
    assert [FeedbackRecord.decode(line).text for line in listed.content.splitlines()] == [  # type: ignore[union-attr]
        f"record number {n}" for n in (MAX_ENTRIES + 1, MAX_ENTRIES + 2)
    ]


def test_records_older_than_the_ttl_are_not_read() -> None:
    now = 1_000_000.0
    old = FeedbackRecord("h", "old", "neutral", "v", "neutral", 0.5, now - 200)
    new = FeedbackRecord("h", "new", "neutral", "v", "neutral", 0.5, now - 10)
    assert [r.text for r in live_records([old.encode(), b"junk", new.encode()], 100, now)] == [
        "new"
    ]


def test_agreement_is_counted_by_label_and_verdict(server: Predictor, empty: RedisServer) -> None:
    text = f"counting agreement {time.monotonic_ns()}"
    served = str(predict(server, text)["label"])
    other = next(lb for lb in ("negative", "neutral", "positive") if lb != served)

    def count(label: str, verdict: str) -> float:
        return sample_sum(server.url, "predictor_feedback_total", label=label, verdict=verdict)

    agree, disagree = count(served, "agree"), count(other, "disagree")
    assert send(server, {"text": text, "label": served}).status_code == 202
    assert send(server, {"text": text, "label": other}).status_code == 202
    assert send(server, {"text": text, "label": other}).status_code == 202
    assert count(served, "agree") - agree == 1
    assert count(other, "disagree") - disagree == 2


# --- credentials ---------------------------------------------------------------------------
FEEDBACK = "/v1/models/sentiment/feedback"
GUARDED = [
    ("POST", FEEDBACK, {"text": "a guarded write", "label": "positive"}, WRITER, 202),
    ("GET", FEEDBACK, None, READER, 200),
    ("GET", "/v1/users/nobody_here/sentiment", None, READER, 404),  # allowed: no history
]


@pytest.mark.parametrize(("method", "path", "body", "right", "ok"), GUARDED)
def test_each_guarded_route_without_with_a_wrong_and_with_the_right_token(
    server: Predictor, method: str, path: str, body: object, right: str, ok: int
) -> None:
    def call(headers: dict[str, str]) -> httpx.Response:
        return httpx.request(method, f"{server.url}{path}", json=body, headers=headers, timeout=30)

    missing = call({})
    assert missing.status_code == 401, missing.text
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "needs a" in missing.json()["error"]
    not_bearer = call({"Authorization": f"Basic {right}"})
    assert not_bearer.status_code == 401
    other_role = READER if right == WRITER else WRITER  # a real token, of the other role
    for wrong in ("not-the-token-at-all-000", right[:-1], right + "x", other_role):
        resp = call(bearer(wrong))
        assert resp.status_code == 403, (wrong, resp.text)
        assert "is not a" in resp.json()["error"]
        assert wrong not in resp.text
    resp = call(bearer(right))
    assert resp.status_code == ok, resp.text
    if ok == 404:
        assert "no predictions recorded" in resp.json()["error"]


def test_no_token_value_reaches_a_log_line_or_an_error_body(server: Predictor) -> None:
    for token in (WRITER, READER, "a-wrong-token-9f8e7d6c5b4a"):
        send(server, {"text": "logged?", "label": "positive"}, headers=bearer(token))
        httpx.get(f"{server.url}{FEEDBACK}", headers=bearer(token), timeout=10)
    send(server, {"text": "logged?", "label": "positive"}, headers={})
    time.sleep(0.5)  # the access lines are written after the answers
    logs = server.logs()
    assert "feedback" in logs  # the access lines are there
    for token in (WRITER, SECOND_WRITER, READER, "a-wrong-token-9f8e7d6c5b4a"):
        assert token not in logs


def test_a_record_names_its_writer_and_two_writers_are_told_apart(
    server: Predictor, empty: RedisServer
) -> None:
    text = f"who said this {time.monotonic_ns()}"
    assert send(server, {"text": text, "label": "positive"}).status_code == 202
    assert (
        send(server, {"text": text, "label": "negative"}, headers=bearer(SECOND_WRITER)).status_code
        == 202
    )
    records = wait_stored(empty, 2)
    for token in (WRITER, SECOND_WRITER):
        name = "predictor_feedback_by_writer_total"
        assert sample_sum(server.url, name, writer=writer_id(token.encode())) >= 1
    assert {(r.writer, r.label) for r in records} == {
        (writer_id(WRITER.encode()), "positive"),
        (writer_id(SECOND_WRITER.encode()), "negative"),
    }
    assert all(WRITER not in r.encode().decode() for r in records)


def test_credential_checks_are_counted(server: Predictor) -> None:
    def count(result: str) -> float:
        return sample_sum(
            server.url, "predictor_route_auth_total", route="feedback_read", result=result
        )

    before = {r: count(r) for r in ("ok", "missing", "wrong")}
    httpx.get(f"{server.url}{FEEDBACK}", timeout=10)
    httpx.get(f"{server.url}{FEEDBACK}", headers=bearer("wrong-wrong-wrong-wrong"), timeout=10)
    httpx.get(f"{server.url}{FEEDBACK}", headers=READ, timeout=10)
    assert {r: count(r) - before[r] for r in before} == {"ok": 1, "missing": 1, "wrong": 1}
