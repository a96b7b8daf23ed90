"""Text to tensors, shared by serving and training so both see the same ids.

A model trained on one tokenisation and served with another degrades silently;
keeping the one function here makes that impossible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer


@dataclass(frozen=True)
class Encoded:
    """A padded batch: ids and mask are int64 [N, longest-in-batch]."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    truncated: list[bool]


def configure(tokenizer: Tokenizer, max_length: int, pad_id: int, pad_token: str) -> Tokenizer:
    """Truncate to the model's length and pad each batch to its longest text."""
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
    return tokenizer


def load_tokenizer(path: Path, max_length: int, pad_id: int, pad_token: str) -> Tokenizer:
    """Read `tokenizer.json` and configure it as serving uses it."""
    return configure(Tokenizer.from_file(str(path)), max_length, pad_id, pad_token)


def encode(tokenizer: Tokenizer, texts: list[str]) -> Encoded:
    """Tokenise a batch; `truncated` marks texts cut to the maximum length."""
    encodings = tokenizer.encode_batch(texts)
    ids = torch.from_numpy(np.array([e.ids for e in encodings], dtype=np.int64))
    mask = torch.from_numpy(np.array([e.attention_mask for e in encodings], dtype=np.int64))
    return Encoded(ids, mask, [bool(e.overflowing) for e in encodings])
