"""The feature store as the predictor reaches it, for the offline tools (drift, the cycle).

Every store the predictor supports works here because it is the predictor's own code:
the backend comes from `predictor.featurestore.registry.create_backend` (standalone,
`rediss://` TLS, Sentinel, Cluster, unix sockets, and any plugin backend), with the same
`FeatureStoreSettings`: `PREDICTOR_REDIS_*` and `PREDICTOR_KEY_PREFIX` from the environment
and the passwords from the mounted files in `PREDICTOR_SECRETS_DIR`, exactly as the pod
reads them. Keys come from `predictor.featurestore.keys`; the backend adds the prefix.
Every read goes through the store's front door (`FeatureStore`), as the pod's do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from pydantic import SecretStr

from predictor.errors import UpstreamUnavailable
from predictor.featurestore import keys
from predictor.featurestore.settings import FeatureStoreSettings
from predictor.featurestore.store import FeatureStore, Unavailable
from predictor.settings_base import SecretsSettings

# Offline reads may wait longer than a request may: seconds, not the request path's 0.25 s.
OFFLINE_TIMEOUT_S = 10.0


class StoreError(RuntimeError):
    """The feature store could not be read (unreachable, refused, not a shared store)."""


def is_store_url(source: str) -> bool:
    """A URL naming a feature-store backend (not a predictor's HTTP API or a file path)."""
    scheme = urlsplit(source).scheme.lower()
    return "://" in source and scheme not in ("http", "https", "file", "")


def store_settings(url: str, key_prefix: str | None = None) -> FeatureStoreSettings:
    """The predictor's feature-store settings with `url` as the backend (and `key_prefix`
    when given; else PREDICTOR_KEY_PREFIX or its default)."""
    if urlsplit(url).scheme.lower() == "memory":
        raise StoreError(
            "memory:// lives inside the predictor's process; read it through the predictor "
            "(--feedback http://PREDICTOR) or point the predictor at a shared Redis"
        )
    extra = {} if key_prefix is None else {"key_prefix": key_prefix}
    return FeatureStoreSettings(
        _secrets_dir=SecretsSettings().existing_dir(),  # the pod's mounted password files
        redis_url=SecretStr(url),
        connect_timeout_s=OFFLINE_TIMEOUT_S,
        lookup_timeout_s=OFFLINE_TIMEOUT_S,
        write_timeout_s=OFFLINE_TIMEOUT_S,
        **extra,  # type: ignore[arg-type]
    )


async def _through_store(
    settings: FeatureStoreSettings, read: Callable[[FeatureStore], Awaitable[list[bytes]]]
) -> list[bytes]:
    """One read through the feature store's front door (breaker, health, metrics), then the
    backend released."""
    store = FeatureStore(settings)
    try:
        return await read(store)
    finally:
        await store.close()


def read_list(settings: FeatureStoreSettings, key: str, limit: int) -> list[bytes]:
    """The newest `limit` entries of a capped list (e.g. `keys.feedback_key(model)`)."""
    try:
        return asyncio.run(_through_store(settings, lambda s: s.read_history(key, limit)))
    except (UpstreamUnavailable, ValueError) as exc:
        raise StoreError(str(exc)) from exc


def scan_predictions(
    settings: FeatureStoreSettings, model: str, version: str, max_entries: int
) -> list[bytes]:
    """The cached prediction values of one model version (every precision), at most
    `max_entries`; every shard of a cluster is scanned. Whether a backend can enumerate its
    keys is the backend's to say (`Backend.scan_values`), not a list of schemes here."""
    prefix = keys.prediction_prefix(model, version)
    try:
        return asyncio.run(_through_store(settings, lambda s: s.scan_values(prefix, max_entries)))
    except (Unavailable, ValueError) as exc:
        raise StoreError(f"feature store unreachable: {exc}") from exc
