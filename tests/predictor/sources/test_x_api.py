"""The X API v2 client against a local fake that answers in the API's own format."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from predictor.errors import NotFound, UpstreamError, UpstreamUnavailable
from predictor.sources.x_api import XApiSource
from tests.fixtures.fake_x_api import TOKEN, FakeXApi
from tests.fixtures.predictor_proc import free_port


def source(url: str, token: str = TOKEN) -> XApiSource:
    return XApiSource(url, token, timeout_s=2, max_concurrency=4)


def outcome(name: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "predictor_tweet_source_requests_total", {"source": "x", "outcome": name}
        )
        or 0.0
    )


async def test_fetches_text_author_and_time(fake_x_api: FakeXApi) -> None:
    fake_x_api.add("42", "what a lovely day", "Alice", "2026-11-01T12:00:00.000Z")
    before = outcome("ok")
    src = source(fake_x_api.url)
    try:
        tweet = await src.fetch("42")
    finally:
        await src.close()
    assert (tweet.id, tweet.text, tweet.author) == ("42", "what a lovely day", "Alice")
    assert tweet.created_at == 1_793_534_400.0  # 2026-11-01T12:00:00Z
    assert outcome("ok") - before == 1
    path = fake_x_api.requests[-1]
    assert path.startswith("/2/tweets/42?") and "expansions=author_id" in path


@pytest.mark.parametrize(
    ("setup", "error", "message", "counted"),
    [
        ("unknown", NotFound, "Could not find tweet with id: [7]", "not_found"),
        ("token", UpstreamError, "refused the configured bearer token (401", "unauthorized"),
        ("429", UpstreamUnavailable, "reached (Too Many Requests); it resets", "rate_limited"),
        ("500", UpstreamError, "X API answered 500: Upstream broke", "upstream_error"),
        ("503", UpstreamError, "X API answered 503", "upstream_error"),
    ],
)  # fmt: skip
async def test_errors_map_to_typed_errors(
    fake_x_api: FakeXApi, setup: str, error: type[Exception], message: str, counted: str
) -> None:
    fake_x_api.add("8", "exists", "bob")
    token = "wrong" if setup == "token" else TOKEN
    if setup == "429":
        fake_x_api.rate_limit = 1
    elif setup in ("500", "503"):
        fake_x_api.force_status = int(setup)
    src = source(fake_x_api.url, token)
    before = outcome(counted)
    try:
        if setup == "429":
            await src.fetch("8")  # the last request of the quota still works
        with pytest.raises(error) as err:
            await src.fetch("7" if setup == "unknown" else "8")
    finally:
        await src.close()
    assert message in str(err.value)
    assert outcome(counted) - before == 1


async def test_unreachable_api_is_503() -> None:
    src = source(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(UpstreamUnavailable, match="X API unreachable"):
            await src.fetch("1")
    finally:
        await src.close()
