"""Tweet-source settings (`PREDICTOR_X_*`), read once at start."""

from __future__ import annotations

from pydantic import Field, SecretStr

from predictor.settings_base import PredictorSettings


class TweetSourceSettings(PredictorSettings):
    """The X API v2 endpoint and credentials used to resolve tweet URLs."""

    x_api_base_url: str = Field(
        "https://api.x.com", description="X API v2 base URL (tests point it at a local fake)."
    )
    x_bearer_token: SecretStr | None = Field(
        None, description="App-only bearer token. Unset: tweet_url instances are a 400."
    )
    x_timeout_s: float = Field(5.0, gt=0, description="Per-request timeout to the X API.")
    x_max_concurrency: int = Field(
        8, ge=1, description="Most X API requests in flight at once (one per uncached tweet)."
    )
