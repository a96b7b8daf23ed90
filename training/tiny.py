"""Tiny randomly initialised encoders, built through the real pipeline.

Tests need a model directory in seconds, not a 10-minute build: these use the
same load -> fit -> trace -> parity -> card path as the real model, only with
a 2-layer, 32-wide encoder and a few hundred tweets. The RoBERTa variant
(byte-level BPE, pad id 1, offset positions) proves the pipeline is not
BERT-only.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

from training import data
from training.build import build, parse_args
from training.encoder import packaged_encoder_dir

Arch = Literal["bert", "roberta"]
TINY: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


def _roberta_tokenizer(texts: list[str]) -> str:
    """A small byte-level BPE with RoBERTa's special tokens, trained on the corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return str(tokenizer.to_str())


def build_tiny_encoder(path: Path, arch: Arch = "bert") -> Path:
    """Write a random-init Hugging Face encoder directory (config, weights, tokenizer.json)."""
    import torch
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

    torch.manual_seed(0)
    path.mkdir(parents=True, exist_ok=True)
    if arch == "bert":
        shutil.copy(packaged_encoder_dir() / "tokenizer.json", path / "tokenizer.json")
        BertModel(BertConfig(vocab_size=30522, pad_token_id=0, **TINY)).save_pretrained(path)
    else:
        texts = data.load_corpus().texts[:2000]
        (path / "tokenizer.json").write_text(_roberta_tokenizer(texts), encoding="utf-8")
        config = RobertaConfig(
            vocab_size=500, max_position_embeddings=66, pad_token_id=1, bos_token_id=0,
            eos_token_id=2, **TINY,
        )  # fmt: skip
        RobertaModel(config).save_pretrained(path)
    return path


def build_tiny_model_dir(path: Path, arch: Arch = "bert", *extra_args: str) -> Path:
    """Encoder + quick-mode head + export: a servable model directory under `path`.

    The frozen encoder + logistic head (`--train-layers 0`) by default: a random 2-layer
    encoder fine-tuned for a few steps collapses to one class, and tests downstream (mlops)
    need a model that fits its labels; `--train-layers N` in `extra_args` takes the
    fine-tuning path."""
    encoder = build_tiny_encoder(path / f"hf-{arch}", arch)
    out = path / "model"
    args = parse_args(
        ["--encoder", str(encoder), "--out", str(out), "--limit", "400",
         "--max-seq-length", "32", "--epochs", "5", "--name", "sentiment",
         "--ood-limit", "300", "--train-layers", "0", *extra_args]
    )  # fmt: skip
    build(args)
    return out
