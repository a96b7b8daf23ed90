"""The fields of `model_card.json` the predictor relies on, and what makes a model directory.

The card is written by `training/export.py`; the predictor reads only what it
needs to serve (labels, lengths, version) and keeps the rest for metadata.
A model directory arrives from anywhere (`make model`, KServe's storage
initializer, a modelcar, a PVC), so every way it can be wrong gets a message
that names the directory and the fix, here, before anything is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CARD_FILE = "model_card.json"
# Everything serving opens; the card is read first, so it is listed last (it names the others).
MODEL_FILES = ("model.pt", "tokenizer.json", CARD_FILE)


# The TorchScript file for each exported precision (fp16 on CUDA is model.pt halved at load).
PRECISION_FILES = {"fp32": "model.pt", "bf16": "model-bf16.pt"}


class ModelCardError(ValueError):
    """The model directory is missing, incomplete, or its card is not one serving can use."""


class ServingCard(BaseModel):
    """What serving needs from a model card; unknown fields are kept as they are."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str
    version: str
    labels: list[str] = Field(min_length=2)
    max_seq_length: int = Field(gt=0)
    pad_token_id: int = 0
    pad_token: str = "[PAD]"

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[str]) -> list[str]:
        """Two outputs with one name would make a label's probability ambiguous."""
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels must be distinct, got {labels}")
        return labels

    @classmethod
    def read(cls, model_dir: Path) -> ServingCard:
        """Load `model_card.json`; a missing, non-JSON or incomplete card is a ModelCardError."""
        path = model_dir / CARD_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelCardError(f"{model_dir} has no {CARD_FILE}") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelCardError(f"{path} is not a readable JSON file: {exc}") from exc
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '<card>'}: {e['msg']}" for e in exc.errors()
            )
            raise ModelCardError(f"{path} is not a serving model card: {problems}") from exc


def check_model_dir(model_dir: Path) -> ServingCard:
    """The card of a complete model directory, or a ModelCardError that says what is wrong.

    Why one place: the predictor at load time and `mlops.publish` before an upload must refuse
    the same directories with the same words.
    """
    if not model_dir.is_dir():
        raise ModelCardError(
            f"model directory {model_dir} does not exist: with a storageUri it is what KServe's "
            "storage initializer or modelcar put at /mnt/models (PREDICTOR_MODEL_DIR overrides "
            "it); locally, run `make model`"
        )
    missing = [f for f in MODEL_FILES if not (model_dir / f).is_file()]
    if missing:
        present = sorted(p.name for p in model_dir.iterdir())[:10]
        raise ModelCardError(
            f"model directory {model_dir} lacks {', '.join(missing)} "
            f"(it holds {present or 'nothing'}); "
            "publish a directory written by `python -m training.build`, or run `make model`"
        )
    return ServingCard.read(model_dir)
