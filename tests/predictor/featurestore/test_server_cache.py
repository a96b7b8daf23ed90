"""The feature store inside a real predictor process, with a real Redis and a fake X API."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest

from harness.inprocess import InProcessPredictor
from harness.scrape import sample_sum
from harness.servers import Predictor
from tests.fixtures.fake_x_api import FakeXApi
from tests.fixtures.predictor_proc import PredictorProcess
from tests.fixtures.redis_server import RedisServer

PREDICT = "/v1/models/sentiment:predict"
TTL = 3600
FAST_RECOVERY = {
    "PREDICTOR_BREAKER_FAILURES": "2",
    "PREDICTOR_BREAKER_RESET_S": "0.5",
    "PREDICTOR_HEALTH_INTERVAL_S": "0.5",
}


def metric(server: Predictor, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sample_sum(server.url, name, **labels)


def predict(server: Predictor, *instances: object) -> httpx.Response:
    return httpx.post(f"{server.url}{PREDICT}", json={"instances": list(instances)}, timeout=30)


def wait_for_keys(redis: RedisServer, at_least: int, timeout: float = 5.0) -> None:
    """Wait for the write-behind: it lands after the response, so poll Redis for it."""
    deadline = time.monotonic() + timeout
    while redis.client().dbsize() < at_least:
        assert time.monotonic() < deadline, f"fewer than {at_least} keys after {timeout}s"
        time.sleep(0.02)


def unique(tag: str) -> str:
    return f"{tag} {time.monotonic_ns()}"


@pytest.fixture(scope="module")
def server(
    tiny_model_dir: Path,
    module_redis: RedisServer,
    module_x_api: FakeXApi,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[InProcessPredictor]:
    env = {
        "PREDICTOR_REDIS_URL": module_redis.url(),
        "PREDICTOR_CACHE_TTL_SECONDS": str(TTL),
        **module_x_api.env(),
        "PREDICTOR_WRITE_TIMEOUT_S": "5",  # outlasts the 3 s write pause below
        # these tests watch Redis itself; the in-process near cache would answer repeats
        "PREDICTOR_NEAR_CACHE_ENTRIES": "0",
        **FAST_RECOVERY,
    }
    log = tmp_path_factory.mktemp("cached") / "predictor.log"
    proc = InProcessPredictor(tiny_model_dir, log, env=env).start().wait_ready()
    yield proc
    proc.stop()


def test_a_hit_answers_the_same_without_the_model(
    server: Predictor, module_redis: RedisServer
) -> None:
    texts = [unique("fine weather"), unique("awful queue")]
    keys_before = module_redis.client().dbsize()
    first = predict(server, *texts)
    assert first.status_code == 200, first.text
    wait_for_keys(module_redis, keys_before + 2)
    forward_passes = metric(server, "predictor_batch_size_sum")
    hits = metric(server, "predictor_cache_lookups_total", result="hit")
    second = predict(server, *texts)
    assert second.json() == first.json()
    assert metric(server, "predictor_cache_lookups_total", result="hit") - hits == 2
    assert metric(server, "predictor_batch_size_sum") == forward_passes, "a hit ran the model"


async def test_v1_v2_and_grpc_share_entries(server: Predictor, module_redis: RedisServer) -> None:
    text = unique("shared between protocols")
    keys_before = module_redis.client().dbsize()
    v1 = predict(server, text).json()["predictions"][0]
    wait_for_keys(module_redis, keys_before + 1)
    hits = metric(server, "predictor_cache_lookups_total", result="hit")
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}]}
    v2 = httpx.post(f"{server.url}/v2/models/sentiment/infer", json=body, timeout=30).json()
    probs = {o["name"]: o["data"] for o in v2["outputs"]}["probabilities"]
    assert np.allclose(probs, list(v1["probabilities"].values()), atol=1e-6)
    inp = InferInput("text", [1], "BYTES")
    inp.set_data_from_numpy(np.array([text.encode()], dtype=object), binary_data=False)
    client = InferenceGRPCClient(server.grpc_target)
    try:
        res = await client.infer(InferRequest(model_name="sentiment", infer_inputs=[inp]))
    finally:
        await client.close()
    by_name = {o.name: o for o in res.outputs}
    assert by_name["label"].as_numpy()[0].decode() == v1["label"]
    assert metric(server, "predictor_cache_lookups_total", result="hit") - hits == 2


def test_tweet_urls_carry_author_and_are_cached(
    server: Predictor, module_x_api: FakeXApi, module_redis: RedisServer
) -> None:
    url = module_x_api.add("1001", "what a lovely morning", "Dana")
    keys_before = module_redis.client().dbsize()
    resp = predict(server, {"tweet_url": url + "?s=20"}, unique("plain text"))
    assert resp.status_code == 200, resp.text
    tweet, plain = resp.json()["predictions"]
    assert (tweet["tweet_id"], tweet["author"]) == ("1001", "Dana")
    assert "tweet_id" not in plain
    fetched = len(module_x_api.requests)
    wait_for_keys(module_redis, keys_before + 4)  # two predictions, the tweet, dana's history
    again = predict(server, {"tweet_url": url.replace("x.com", "mobile.twitter.com")})
    assert again.json()["predictions"][0] == tweet
    assert len(module_x_api.requests) == fetched, "the cached tweet was fetched again"


@pytest.mark.parametrize(
    ("setup", "url", "status", "message"),
    [
        (None, "https://x.com/a/status/404404", 404, "tweet 404404 not found"),
        (None, "https://example.com/a/status/1", 400, "must be an x.com or twitter.com URL"),
        (None, "https://x.com/a/followers", 400, "not a tweet URL"),
        ("rate", "https://x.com/a/status/777", 503, "X API rate limit reached"),
        ("500", "https://x.com/a/status/778", 502, "X API answered 500"),
    ],
)
def test_tweet_url_errors(
    server: Predictor,
    module_x_api: FakeXApi,
    setup: str | None,
    url: str,
    status: int,
    message: str,
) -> None:
    module_x_api.rate_limit = 0 if setup == "rate" else None
    module_x_api.force_status = 500 if setup == "500" else None
    try:
        resp = predict(server, "fine", {"tweet_url": url})
    finally:
        module_x_api.rate_limit = module_x_api.force_status = None
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error.startswith("instances[1].tweet_url") and message in error


def test_every_key_has_a_ttl_and_the_version(
    server: Predictor,
    module_redis: RedisServer,
    module_x_api: FakeXApi,
    tiny_model_dir: Path,
) -> None:
    url = module_x_api.add("2002", "meh", "eve")
    keys_before = module_redis.client().dbsize()
    assert predict(server, unique("ttl"), {"tweet_url": url}).status_code == 200
    wait_for_keys(module_redis, keys_before + 4)
    raw = module_redis.client()
    found = list(raw.scan_iter("*"))
    kinds = {k.split(b":")[1] for k in found}
    assert {b"pred", b"tweet", b"hist"} <= kinds
    for key in found:
        assert 0 < raw.ttl(key) <= TTL, key
    version = json.loads((tiny_model_dir / "model_card.json").read_text())["version"]
    preds = [k.decode() for k in found if k.startswith(b"tss:pred:")]
    assert preds and all(k.startswith(f"tss:pred:sentiment:{version}:") for k in preds)


def test_write_behind_does_not_delay_the_response(
    server: Predictor, module_redis: RedisServer
) -> None:
    raw = module_redis.client()
    before = raw.dbsize()
    raw.client_pause(3000, all=False)  # writes block for 3 s; reads still answer
    start = time.perf_counter()
    resp = predict(server, unique("not delayed"))
    elapsed = time.perf_counter() - start
    assert resp.status_code == 200
    assert elapsed < 1.5, f"the response waited {elapsed:.2f}s for the paused write"
    assert raw.dbsize() == before, "written before the response"
    wait_for_keys(module_redis, before + 1, timeout=8)


def test_redis_stopped_mid_run_then_started_again(
    server: Predictor, module_redis: RedisServer
) -> None:
    texts = [unique(f"outage {i}") for i in range(30)]
    errors = metric(server, "predictor_cache_lookups_total", result="error")
    module_redis.stop()
    try:
        codes = [predict(server, t).status_code for t in texts]
        assert codes == [200] * 30, "requests must keep succeeding without Redis"
        assert metric(server, "predictor_cache_lookups_total", result="error") - errors == 30
        time.sleep(0.6)  # one health interval
        assert metric(server, "predictor_featurestore_up", backend="redis") == 0
        warnings = [line for line in server.logs().splitlines() if "serving without it" in line]
        assert 1 <= len(warnings) <= 2, warnings  # logged once per interval, not per request
    finally:
        module_redis.start()
    deadline = time.monotonic() + 5
    while metric(server, "predictor_featurestore_up", backend="redis") != 1:
        assert time.monotonic() < deadline, "featurestore_up never came back"
        time.sleep(0.1)
    hits = metric(server, "predictor_cache_lookups_total", result="hit")
    assert predict(server, texts[0]).status_code == 200  # a miss: Redis came back empty
    wait_for_keys(module_redis, 1)
    assert predict(server, texts[0]).status_code == 200
    assert metric(server, "predictor_cache_lookups_total", result="hit") - hits == 1


def test_wrong_password_and_no_token(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("auth")
    # unguessable canaries: no log line can contain them by chance, only by leaking them
    right, wrong = f"right-{secrets.token_hex(12)}", f"wrong-{secrets.token_hex(12)}"
    redis = RedisServer(tmp, password=right).start()
    proc = PredictorProcess(
        tiny_model_dir,
        tmp / "predictor.log",
        env={"PREDICTOR_REDIS_URL": redis.url(password=wrong), **FAST_RECOVERY},
    )
    try:
        proc.start().wait_ready()
        assert all(predict(proc, unique("auth")).status_code == 200 for _ in range(10))
        assert metric(proc, "predictor_featurestore_up", backend="redis") == 0
        assert metric(proc, "predictor_cache_lookups_total", result="error") == 10
        warnings = [line for line in proc.logs().splitlines() if "serving without it" in line]
        assert len(warnings) == 1 and "AuthenticationError" in warnings[0]
        logs = proc.logs()
        assert "AuthenticationError" in logs, "the canaries are only meaningful if it failed"
        assert right not in logs and wrong not in logs  # no password in logs
        resp = predict(proc, {"tweet_url": "https://x.com/a/status/1"})
        assert resp.status_code == 400
        assert "PREDICTOR_X_BEARER_TOKEN" in resp.json()["error"]
    finally:
        proc.stop()
        redis.stop()
