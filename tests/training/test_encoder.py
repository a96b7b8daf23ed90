"""Loading local Hugging Face directories: bare encoders and classifiers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.encoder import (
    ClassifierLogits,
    EncoderError,
    PooledClassifier,
    load_encoder,
    mean_pool,
)
from training.tiny import TINY, build_tiny_encoder


def test_mean_pool_ignores_padding() -> None:
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(mean_pool(hidden, mask), torch.tensor([[2.0, 3.0]]))


@pytest.mark.parametrize(("arch", "pad", "pad_id"), [("bert", "[PAD]", 0), ("roberta", "<pad>", 1)])
def test_bare_encoders_get_a_pooled_head_and_their_own_pad_token(
    tmp_path: Path, arch: str, pad: str, pad_id: int
) -> None:
    enc = load_encoder(build_tiny_encoder(tmp_path, arch), num_labels=3)  # type: ignore[arg-type]
    assert isinstance(enc.module, PooledClassifier)
    assert (enc.pad_token, enc.pad_token_id, enc.model_type) == (pad, pad_id, arch)
    batch = enc.tokenizer().encode_batch(["short", "a much longer text than the first"])
    assert batch[0].ids[-1] == pad_id  # padded with the model's own pad id


def test_roberta_length_leaves_room_for_its_position_offset(tmp_path: Path) -> None:
    enc = load_encoder(build_tiny_encoder(tmp_path, "roberta"), 3, max_seq_length=512)
    assert enc.max_seq_length == 66 - 2  # max_position_embeddings - (padding_idx + 1)


def test_a_classification_checkpoint_keeps_its_head(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForSequenceClassification

    encoder = build_tiny_encoder(tmp_path / "enc", "bert")
    clf_dir = tmp_path / "clf"
    config = BertConfig(vocab_size=30522, **TINY)
    config.num_labels = 3
    model = BertForSequenceClassification(config)
    model.save_pretrained(clf_dir)
    (clf_dir / "tokenizer.json").write_bytes((encoder / "tokenizer.json").read_bytes())
    enc = load_encoder(clf_dir, 3)
    assert isinstance(enc.module, ClassifierLogits) and enc.has_own_head
    with pytest.raises(EncoderError, match="classifies 3 labels, need 2"):
        load_encoder(clf_dir, 2)


def test_a_directory_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match=r"no config\.json"):
        load_encoder(tmp_path, 3)
