"""The composition root: every settings class is read once here and every
dependency is built here and injected, so no other module reads the
environment or builds its own collaborators.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
from predictor.serving.server import PredictorServer
from predictor.settings import ServingSettings
from predictor.sources.resolver import TweetResolver, create_source
from predictor.sources.settings import TweetSourceSettings


@dataclass(frozen=True)
class Settings:
    """All settings of one predictor process, one instance per concern."""

    serving: ServingSettings = field(default_factory=ServingSettings)
    featurestore: FeatureStoreSettings = field(default_factory=FeatureStoreSettings)
    tweets: TweetSourceSettings = field(default_factory=TweetSourceSettings)
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)
    explain: ExplainSettings = field(default_factory=ExplainSettings)


def build_model(
    name: str,
    settings: Settings,
    model_cls: type[SentimentModel] = SentimentModel,
) -> SentimentModel:
    """The model with its engine, feature store, prediction cache, user history and
    tweet resolver."""
    store = FeatureStore(settings.featurestore)
    return model_cls(
        name,
        settings.serving,
        engine=Engine(settings.serving),
        featurestore=store,
        cache=PredictionCache(store, name),
        history=UserHistory(store, name),
        tweets=TweetResolver(create_source(settings.tweets), store, name),
        explain=settings.explain,
    )


@dataclass(frozen=True)
class Listeners:
    """Where and how the server listens: KServe's own command-line flags."""

    http_port: int = 8080
    grpc_port: int = 8081
    enable_grpc: bool = True
    grpc_threads: int = 4
    timeout_keep_alive: int = 65


def build_server(
    settings: Settings,
    listeners: Listeners,
    name: str = DEFAULT_MODEL_NAME,
    model_cls: type[SentimentModel] = SentimentModel,
) -> PredictorServer:
    """The whole process: the model, its routes and the REST + gRPC server around it."""
    model = build_model(name, settings, model_cls)
    routers = [users.router(model.history, lambda: model.labels)]
    if settings.feedback.feedback_enabled:
        log = FeedbackLog(model.featurestore, name, settings.feedback)
        routers.append(feedback.router(model, log))
    return PredictorServer(
        model,
        settings.serving,
        http_port=listeners.http_port,
        grpc_port=listeners.grpc_port,
        enable_grpc=listeners.enable_grpc,
        grpc_threads=listeners.grpc_threads,
        timeout_keep_alive=listeners.timeout_keep_alive,
        routers=routers,
    )
