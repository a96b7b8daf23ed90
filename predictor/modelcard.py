"""The fields of `model_card.json` the predictor relies on.

The card is written by `training/export.py`; the predictor reads only what it
needs to serve (labels, lengths, version) and keeps the rest for metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ServingCard(BaseModel):
    """What serving needs from a model card; unknown fields are kept as they are."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str
    version: str
    labels: list[str] = Field(min_length=2)
    max_seq_length: int = Field(gt=0)
    pad_token_id: int = 0
    pad_token: str = "[PAD]"

    @classmethod
    def read(cls, model_dir: Path) -> ServingCard:
        """Load `model_card.json`; a missing or malformed card is a load failure."""
        path = model_dir / "model_card.json"
        return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
