"""Tweet-source settings (`PREDICTOR_X_*`), read once at start."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class TweetSourceSettings(BaseSettings):
    """The X API v2 endpoint and credentials used to resolve tweet URLs."""

    model_config = SettingsConfigDict(
        env_prefix="PREDICTOR_", env_file=".env", extra="ignore", protected_namespaces=()
    )

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
