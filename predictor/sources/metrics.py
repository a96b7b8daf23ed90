"""Tweet-source series on the default registry."""

from __future__ import annotations

from prometheus_client import Counter

TWEET_SOURCE_REQUESTS = Counter(
    "predictor_tweet_source_requests_total",
    "Tweets resolved, by source and outcome: ok, not_found, rate_limited, unauthorized, "
    "upstream_error, unreachable (calls to the source), or cached (answered by the "
    "feature store without calling it).",
    ["source", "outcome"],
)
