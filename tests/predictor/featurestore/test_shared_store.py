"""Two predictor processes ("pods") sharing one Redis: one cache and one history for both."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.scrape import sample_sum
from tests.fixtures.fake_x_api import FakeXApi
from tests.fixtures.predictor_proc import PredictorProcess
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.tokens import READ
from tests.fixtures.tokens import env as tokens_env

PASSWORD = "shared-pods-pw-7f3a"


@pytest.fixture(scope="module")
def pods(
    tiny_model_dir: Path, module_x_api: FakeXApi, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PredictorProcess, PredictorProcess, RedisServer]]:
    tmp = tmp_path_factory.mktemp("shared")
    redis = RedisServer(tmp, password=PASSWORD).start()
    secrets = tmp / "secrets"
    secrets.mkdir()
    (secrets / "PREDICTOR_REDIS_PASSWORD").write_text(PASSWORD)  # the mounted Secret
    env = {
        "PREDICTOR_REDIS_URL": redis.url(password=""),  # no password in the URL or env
        "PREDICTOR_SECRETS_DIR": str(secrets),
        **module_x_api.env(),
        **tokens_env(tmp / "tokens"),
    }
    a = PredictorProcess(tiny_model_dir, tmp / "a.log", env=env).start()
    b = PredictorProcess(tiny_model_dir, tmp / "b.log", env=env).start()
    try:
        a.wait_ready()
        b.wait_ready()
        yield a, b, redis
    finally:
        a.stop()
        b.stop()
        redis.stop()


def predict(pod: PredictorProcess, *instances: object) -> httpx.Response:
    url = f"{pod.url}/v1/models/sentiment:predict"
    return httpx.post(url, json={"instances": list(instances)}, timeout=30)


def hits(pod: PredictorProcess) -> float:
    return sample_sum(pod.url, "predictor_cache_lookups_total", result="hit")


def history(pod: PredictorProcess, user: str) -> httpx.Response:
    url = f"{pod.url}/v1/users/{user}/sentiment"
    return httpx.get(url, params={"points": True}, headers=READ, timeout=10)


def wait_for(check: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_prediction_computed_by_one_pod_is_a_hit_on_the_other(
    pods: tuple[PredictorProcess, PredictorProcess, RedisServer],
) -> None:
    a, b, redis = pods
    text = f"computed once for both pods {time.monotonic_ns()}"
    keys_before = redis.client().dbsize()
    first = predict(a, text)
    assert first.status_code == 200, first.text
    wait_for(lambda: redis.client().dbsize() > keys_before, "pod A's write never landed")
    before = hits(b)
    second = predict(b, text)
    assert second.json() == first.json()
    assert hits(b) - before == 1, "pod B answered from the shared store"


def test_a_tweet_seen_through_one_pod_is_in_the_history_read_from_the_other(
    pods: tuple[PredictorProcess, PredictorProcess, RedisServer], module_x_api: FakeXApi
) -> None:
    a, b, _ = pods
    now = datetime.now(UTC)
    urls = [
        module_x_api.add(
            f"77{n}",
            f"shared tweet {n}",
            "Harper",
            (now - timedelta(hours=3 - n)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        )
        for n in range(3)
    ]
    assert predict(a, *({"tweet_url": u} for u in urls[:2])).status_code == 200
    fetched = len(module_x_api.requests)
    assert predict(b, {"tweet_url": urls[0]}, {"tweet_url": urls[2]}).status_code == 200
    assert len(module_x_api.requests) == fetched + 1, "pod B found tweet 770 in the store"
    wait_for(lambda: _count(b) == 3, "pod B never saw all three tweets in the history")
    from_a, from_b = history(a, "harper").json(), history(b, "harper").json()
    assert [p["tweet_id"] for p in from_b["points"]] == ["770", "771", "772"]
    assert from_a["points"] == from_b["points"] and from_a["counts"] == from_b["counts"]


def _count(pod: PredictorProcess) -> int:
    resp = history(pod, "harper")
    return int(resp.json()["count"]) if resp.status_code == 200 else 0
