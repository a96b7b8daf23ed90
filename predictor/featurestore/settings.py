"""Feature-store settings: one pydantic-settings class, read once at start.

`PREDICTOR_REDIS_URL` picks the backend by its scheme; unset means the
in-process memory backend, so a bare `make serve` needs nothing else running.

Passwords also come from files, as Bitnami charts do: a Secret mounted at
`PREDICTOR_SECRETS_DIR` (`predictor.settings_base.SecretsSettings`; the
composition root passes it as `_secrets_dir`) with files named like the
variables (`PREDICTOR_REDIS_PASSWORD`, `PREDICTOR_REDIS_SENTINEL_PASSWORD`), so
no password is in an env var or on a command line.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from predictor.settings_base import PredictorSettings

SIXTY_DAYS_S = 60 * 24 * 3600


class FeatureStoreSettings(PredictorSettings):
    """Where predictions, tweets and per-user histories are kept, and how hard to try."""

    redis_url: SecretStr | None = Field(
        None,
        description="Backend URL: redis://host:port/db or rediss:// (standalone), "
        "redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB], "
        "redis+cluster://HOST:PORT[,HOST:PORT...], unix:///path.sock, memory:// or unset for "
        "the in-process LRU. Secret because it may carry a password (better: a file).",
    )
    redis_password: SecretStr | None = Field(
        None,
        description="Password of the Redis data nodes (standalone, Sentinel-managed or cluster), "
        "usually the file PREDICTOR_REDIS_PASSWORD in the secrets directory; a password in "
        "the URL wins over it.",
    )
    redis_username: str | None = Field(
        None, description="ACL user of the data nodes; unset means the default user."
    )
    redis_sentinel_password: SecretStr | None = Field(
        None,
        description="Password of the sentinels themselves, when they require one (file "
        "PREDICTOR_REDIS_SENTINEL_PASSWORD in the secrets directory).",
    )
    redis_tls: bool = Field(
        False,
        description="TLS to every Redis node (and sentinel) for redis+sentinel:// and "
        "redis+cluster://; rediss:// turns it on for a standalone server.",
    )
    redis_tls_ca_file: Path | None = Field(
        None,
        description="CA bundle that signed the Redis servers' certificates (a mounted CA "
        "Secret); unset trusts the system store.",
    )
    cache_enabled: bool = Field(True, description="Look predictions up before the model.")
    cache_ttl_seconds: int = Field(
        SIXTY_DAYS_S, ge=1, description="Expiry of every key: predictions, tweets, histories."
    )
    key_prefix: str = Field(
        "tss:",
        description="Prepended to every key, so one Redis can be shared safely. No braces: "
        "Redis Cluster would read them as a hash tag and put every key on one slot.",
    )
    near_cache_entries: int = Field(
        10_000,
        ge=0,
        description="Predictions also kept in process (LRU) in front of a remote backend, so "
        "a repeated text costs no round trip. Safe with a shared store: a (model, version, "
        "precision, text) prediction never changes. 0 turns it off; unused with the memory "
        "backend, which is in process.",
    )
    memory_max_entries: int = Field(
        100_000, ge=1, description="Entries kept by the memory backend before LRU eviction."
    )
    connect_timeout_s: float = Field(
        0.25, gt=0, description="TCP connect (and AUTH) timeout to Redis."
    )
    lookup_timeout_s: float = Field(
        0.25,
        gt=0,
        description="Socket timeout on the request path: a slow Redis costs at most this "
        "before the request falls through to the model.",
    )
    write_timeout_s: float = Field(
        2.0,
        gt=0,
        description="Socket timeout of the write-behind connections; writes run after the "
        "response, so they may wait longer than lookups.",
    )
    max_connections: int = Field(32, ge=2, description="Connections per pool (reads, writes).")
    history_cap: int = Field(
        1000, ge=1, description="Most recent predictions kept per user (older ones drop)."
    )
    write_queue_size: int = Field(
        10_000,
        ge=1,
        description="Pending write-behind entries; beyond it writes are dropped and counted "
        "rather than letting memory grow while Redis is down.",
    )
    write_batch_size: int = Field(
        256, ge=1, description="Most entries written in one pipeline round trip."
    )
    breaker_failures: int = Field(
        3, ge=1, description="Consecutive failures that open the circuit breaker."
    )
    breaker_reset_s: float = Field(
        2.0,
        gt=0,
        description="How long the breaker stays open before one probe is let through.",
    )
    health_interval_s: float = Field(
        5.0, gt=0, description="Background PING period that keeps featurestore_up current."
    )
    error_log_interval_s: float = Field(
        30.0, gt=0, description="Backend failures are logged at most once per interval."
    )

    @field_validator("key_prefix")
    @classmethod
    def _no_hash_tag(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError("must not contain { or }: Redis Cluster would hash only that part")
        return value
