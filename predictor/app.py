"""The composition root: every settings class is read once here and every
dependency is built here and injected, so no other module reads the
environment or builds its own collaborators.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from predictor import DEFAULT_MODEL_NAME
from predictor.engine import Engine
from predictor.explain import ExplainSettings
from predictor.featurestore.feedback_log import FeedbackLog, FeedbackSettings
from predictor.featurestore.history import UserHistory
from predictor.featurestore.predictions import PredictionCache
from predictor.featurestore.settings import FeatureStoreSettings
from predictor.featurestore.store import FeatureStore
from predictor.model import SentimentModel
from predictor.routes import feedback, users
from predictor.routes.auth import ApiTokenSettings, RouteTokens
from predictor.serving.server import PredictorServer
from predictor.settings import ServingSettings
from predictor.settings_base import PredictorSettings, SecretsSettings
from predictor.sources.resolver import TweetResolver, create_source
from predictor.sources.settings import TweetSourceSettings
from predictor.tracing import Tracing, TracingSettings, build_tracing


@dataclass(frozen=True)
class Settings:
    """All settings of one predictor process, one instance per concern."""

    serving: ServingSettings
    featurestore: FeatureStoreSettings
    tweets: TweetSourceSettings
    feedback: FeedbackSettings
    explain: ExplainSettings
    tokens: ApiTokenSettings
    tracing: TracingSettings
    secrets: SecretsSettings

    @classmethod
    def load(cls, **given: PredictorSettings) -> Settings:
        """Every concern read once from the environment, `.env` and, for the feature store's
        passwords, the mounted secret files; a concern in `given` is taken as it is (tests)."""
        secrets = cast(SecretsSettings, given.get("secrets") or SecretsSettings())
        read: dict[str, Callable[[], PredictorSettings]] = {
            "serving": ServingSettings,
            "featurestore": lambda: FeatureStoreSettings(_secrets_dir=secrets.existing_dir()),
            "tweets": TweetSourceSettings,
            "feedback": FeedbackSettings,
            "explain": ExplainSettings,
            "tokens": ApiTokenSettings,
            "tracing": lambda: TracingSettings(_secrets_dir=secrets.existing_dir()),
        }
        built = {name: given.get(name) or make() for name, make in read.items()}
        return cls(secrets=secrets, **built)  # type: ignore[arg-type]


def build_model(
    name: str,
    settings: Settings,
    model_cls: type[SentimentModel] = SentimentModel,
    tracing: Tracing | None = None,
) -> SentimentModel:
    """The model with its engine, feature store, prediction cache, user history and
    tweet resolver, all tracing through `tracing` (off when None)."""
    tracing = tracing or Tracing.off()
    store = FeatureStore(settings.featurestore, tracing=tracing)
    return model_cls(
        name,
        settings.serving,
        engine=Engine(settings.serving),
        featurestore=store,
        cache=PredictionCache(
            store,
            name,
            enabled=settings.featurestore.cache_enabled,
            near_entries=settings.featurestore.near_cache_entries,
            tracing=tracing,
        ),
        history=UserHistory(store, name),
        tweets=TweetResolver(create_source(settings.tweets), store, name),
        explain=settings.explain,
        tracing=tracing,
    )


@dataclass(frozen=True)
class Listeners:
    """Where and how the server listens: KServe's own command-line flags."""

    http_port: int = 8080
    grpc_port: int = 8081
    # Loopback unless told otherwise: a laptop's `make serve` must not expose an
    # unauthenticated API to its network; the image and the chart pass 0.0.0.0.
    bind_address: str = "127.0.0.1"
    enable_grpc: bool = True
    grpc_threads: int = 4
    timeout_keep_alive: int = 65


def build_server(
    settings: Settings,
    listeners: Listeners,
    name: str = DEFAULT_MODEL_NAME,
    model_cls: type[SentimentModel] = SentimentModel,
    tracing: Tracing | None = None,
) -> PredictorServer:
    """The whole process: the model, its routes and the REST + gRPC server around it.
    Tracing as `settings.tracing` says, unless a test hands in its own (in-memory spans)."""
    tracing = tracing or build_tracing(settings.tracing)
    model = build_model(name, settings, model_cls, tracing)
    # Read once here: a configured token file that is missing or empty stops the start.
    tokens = RouteTokens.load(settings.tokens)
    routers = [users.router(model.history, lambda: model.labels, tokens.readers)]
    if settings.feedback.feedback_enabled:
        log = FeedbackLog(model.featurestore, name, settings.feedback)
        routers.append(feedback.router(model, log, tokens))
    return PredictorServer(
        model,
        settings.serving,
        http_port=listeners.http_port,
        grpc_port=listeners.grpc_port,
        bind_address=listeners.bind_address,
        enable_grpc=listeners.enable_grpc,
        grpc_threads=listeners.grpc_threads,
        timeout_keep_alive=listeners.timeout_keep_alive,
        routers=routers,
        tracing=tracing,
    )
