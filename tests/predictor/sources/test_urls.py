"""Tweet URL parsing: what people paste, and what is not a tweet."""

from __future__ import annotations

import pytest

from predictor.errors import BadInput
from predictor.sources.urls import TweetRef, parse_tweet_url


@pytest.mark.parametrize(
    ("url", "ref"),
    [
        ("https://x.com/alice/status/123", TweetRef("123", "alice")),
        ("https://twitter.com/Al_1/status/1234567890123", TweetRef("1234567890123", "Al_1")),
        ("http://www.twitter.com/a/status/5?s=20&t=abc", TweetRef("5", "a")),
        ("https://mobile.twitter.com/a/status/5/photo/1", TweetRef("5", "a")),
        ("https://mobile.x.com/a/statuses/5#frag", TweetRef("5", "a")),
        ("x.com/a/status/5/", TweetRef("5", "a")),
        ("  https://X.COM/a/status/5  ", TweetRef("5", "a")),
        ("https://x.com/i/web/status/77", TweetRef("77", None)),
    ],
)  # fmt: skip
def test_accepted_forms(url: str, ref: TweetRef) -> None:
    assert parse_tweet_url(url) == ref


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/a/status/5", "got host 'example.com'"),
        ("https://x.com.evil.io/a/status/5", "got host 'x.com.evil.io'"),
        ("ftp://x.com/a/status/5", "scheme 'ftp'"),
        ("https://x.com/a", "not a tweet URL"),
        ("https://x.com/a/status/abc", "not a tweet URL"),
        ("https://x.com/a/likes", "not a tweet URL"),
        ("https://x.com/this_name_is_too_long_/status/5", "not a tweet URL"),
        ("https://x.com:99999/a/status/5", "not a URL"),
    ],
)
def test_rejected_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(BadInput, match=r"instances\[3\]\.tweet_url") as err:
        parse_tweet_url(url, "instances[3].tweet_url")
    assert message in err.value.message
