"""The one base class of every predictor settings class.

Each concern (serving, feature store, tweet source, ...) has its own class
with its own fields, but they all read `PREDICTOR_<FIELD>` from the
environment or a `.env` file through this base, so the prefix and the
sources are declared once. Only the composition root (`predictor.app`)
instantiates them; nothing else reads the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "PREDICTOR_"


class PredictorSettings(BaseSettings):
    """Shared configuration of all `PREDICTOR_*` settings classes."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", protected_namespaces=()
    )


class SecretsSettings(PredictorSettings):
    """Where mounted Secret files are read from (a Secret volume, as Bitnami charts mount
    passwords): a file named like a variable (`PREDICTOR_REDIS_PASSWORD`) sets it, so no
    secret is in an env var or on a command line."""

    secrets_dir: Path = Field(
        Path("/var/run/secrets/predictor"),
        description="Directory of mounted secret files, one per variable, named like it; "
        "ignored when absent.",
    )

    def existing_dir(self) -> Path | None:
        """The directory when it is there (pydantic-settings warns about a missing one)."""
        return self.secrets_dir if self.secrets_dir.is_dir() else None
