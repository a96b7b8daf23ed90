"""The one base class of every predictor settings class.

Each concern (serving, feature store, tweet source, ...) has its own class
with its own fields, but they all read `PREDICTOR_<FIELD>` from the
environment or a `.env` file through this base, so the prefix and the
sources are declared once. Only the composition root (`predictor.app`)
instantiates them; nothing else reads the environment.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "PREDICTOR_"


class PredictorSettings(BaseSettings):
    """Shared configuration of all `PREDICTOR_*` settings classes."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", protected_namespaces=()
    )
