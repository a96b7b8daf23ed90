"""Backend selection by URL scheme, open to backends the predictor has never heard of.

Built-ins: unset or `memory://` -> MemoryBackend; `redis://`, `rediss://`,
`unix://`, `redis+sentinel://`, `redis+cluster://` -> RedisBackend (the URL
contract is in redis_url.py). A third backend registers a factory for its scheme,
either by calling `register_backend` before start or, without touching this
repository, through the `predictor.featurestore.backends` entry-point group
(name = scheme, value = a factory `(url, settings) -> Backend`).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from urllib.parse import urlsplit

from predictor.featurestore.backend import Backend
from predictor.featurestore.settings import FeatureStoreSettings

BackendFactory = Callable[[str, FeatureStoreSettings], Backend]
ENTRY_POINT_GROUP = "predictor.featurestore.backends"

_FACTORIES: dict[str, BackendFactory] = {}


def register_backend(scheme: str, factory: BackendFactory) -> None:
    """Make `scheme://...` URLs build their backend with `factory`."""
    _FACTORIES[scheme.lower()] = factory


def unregister_backend(scheme: str) -> None:
    """Forget `scheme` (a plugin's tests clean up with it)."""
    _FACTORIES.pop(scheme.lower(), None)


def _memory(_: str, settings: FeatureStoreSettings) -> Backend:
    from predictor.featurestore.memory import MemoryBackend

    return MemoryBackend(settings.memory_max_entries)


def _redis(url: str, settings: FeatureStoreSettings) -> Backend:
    from predictor.featurestore.redis import RedisBackend  # imports redis only when used
    from predictor.featurestore.redis_url import parse_redis_url

    return RedisBackend(parse_redis_url(url), settings)


register_backend("memory", _memory)
for _scheme in ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster"):
    register_backend(_scheme, _redis)


def _factory(scheme: str) -> BackendFactory | None:
    if scheme in _FACTORIES:
        return _FACTORIES[scheme]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name.lower() == scheme:
            factory: BackendFactory = ep.load()
            register_backend(scheme, factory)
            return factory
    return None


def create_backend(settings: FeatureStoreSettings) -> Backend:
    """The backend `settings.redis_url` names; the memory LRU when it is unset."""
    url = settings.redis_url.get_secret_value() if settings.redis_url else "memory://"
    scheme = urlsplit(url).scheme.lower()
    factory = _factory(scheme)
    if factory is None:
        known = ", ".join(sorted(_FACTORIES))
        raise ValueError(
            f"PREDICTOR_REDIS_URL has scheme {scheme or '(none)'!r}; known schemes are {known} "
            f"(more can be added through the {ENTRY_POINT_GROUP!r} entry points)"
        )
    return factory(url, settings)
