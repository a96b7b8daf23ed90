"""Tweet URLs -> (username, tweet id).

Accepts what people paste: x.com and twitter.com, with or without `www.` or
`mobile.`, http or https or no scheme, trailing `/photo/1`, query strings
(`?s=20&t=...`) and fragments, and the `/i/web/status/ID` form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from predictor.errors import BadInput

HOSTS = frozenset(
    f"{prefix}{domain}"
    for domain in ("x.com", "twitter.com")
    for prefix in ("", "www.", "mobile.", "m.")
)
_PATH = re.compile(
    r"^/(?:(?P<user>[A-Za-z0-9_]{1,15})|i/web|i)/status(?:es)?/(?P<id>[0-9]{1,20})(?:/.*)?/?$"
)


@dataclass(frozen=True)
class TweetRef:
    tweet_id: str
    username: str | None  # None for /i/web/status/ID


def parse_tweet_url(url: str, where: str = "tweet_url") -> TweetRef:
    """Parse or raise BadInput naming `where` and what is wrong."""
    raw = url.strip()
    if "://" not in raw:
        raw = "https://" + raw
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError as exc:
        raise BadInput(f"{where} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise BadInput(f"{where} must be an http(s) URL, got scheme {parts.scheme!r}")
    host = (parts.hostname or "").lower()
    if host not in HOSTS:
        raise BadInput(
            f"{where} must be an x.com or twitter.com URL, got host {host or '(none)'!r}"
        )
    match = _PATH.match(parts.path)
    if match is None:
        raise BadInput(
            f"{where} is not a tweet URL: expected https://x.com/USER/status/ID, got path "
            f"{parts.path or '/'!r}"
        )
    return TweetRef(match.group("id"), match.group("user"))
