"""Eager PyTorch vs the exported TorchScript file, same weights, same texts, one run.

`python -m loadtest.export_speed --model-dir models/sentiment` rebuilds the
eager module from the encoder the card names, loads the trained weights out of
`model.pt`, and times both in turns: latency at batch 1 and throughput at
batch 32. Interleaving the two keeps a noisy shared machine fair to both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from loadtest.corpus import load_pool
from predictor.modelcard import ServingCard
from predictor.tokenization import Encoded, encode, load_tokenizer
from training.encoder import load_encoder, packaged_encoder_dir


def eager_twin(model_dir: Path, encoder_dir: Path) -> nn.Module:
    """The eager module with the exported weights: same names, so the state dict fits."""
    card = ServingCard.read(model_dir)
    module = load_encoder(encoder_dir, len(card.labels), card.max_seq_length).module
    scripted = torch.jit.load(str(model_dir / "model.pt"), map_location="cpu")
    # the trace also saved non-persistent buffers (position ids); every weight must fit
    missing = module.load_state_dict(scripted.state_dict(), strict=False).missing_keys
    if missing:
        raise RuntimeError(f"model.pt lacks weights the eager module needs: {missing[:5]}")
    return module.eval()


def _seconds(module: nn.Module, batch: Encoded) -> float:
    start = time.perf_counter()
    module(batch.input_ids, batch.attention_mask)
    return time.perf_counter() - start


@torch.inference_mode()
def compare(model_dir: Path, encoder_dir: Path, rounds: int, threads: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    card = ServingCard.read(model_dir)
    tok = load_tokenizer(
        model_dir / "tokenizer.json", card.max_seq_length, card.pad_token_id, card.pad_token
    )
    texts = load_pool(model_dir).texts
    models = {
        "eager": eager_twin(model_dir, encoder_dir),
        "torchscript": torch.jit.load(str(model_dir / "model.pt")).eval(),
    }
    singles: dict[str, list[float]] = {k: [] for k in models}
    batched: dict[str, list[float]] = {k: [] for k in models}
    for m in models.values():  # warm both before timing either
        _seconds(m, encode(tok, texts[:32]))
    for r in tqdm(range(rounds), desc="eager vs torchscript", unit="round"):
        one = encode(tok, [texts[r % len(texts)]])
        many = encode(tok, texts[32 * r : 32 * (r + 1)])
        for name, m in models.items():
            singles[name].append(_seconds(m, one))
            batched[name].append(_seconds(m, many))
    out: dict[str, float] = {}
    for name in models:
        out[f"{name}_batch1_p50_ms"] = statistics.median(singles[name]) * 1000
        out[f"{name}_batch32_texts_per_s"] = 32 / statistics.median(batched[name])
    out["speedup_batch1"] = out["eager_batch1_p50_ms"] / out["torchscript_batch1_p50_ms"]
    out["speedup_batch32"] = (
        out["torchscript_batch32_texts_per_s"] / out["eager_batch32_texts_per_s"]
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, default=Path("models/sentiment"))
    p.add_argument("--encoder", type=Path, default=None, help="default: the packaged MiniLM")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    result = compare(args.model_dir, args.encoder or packaged_encoder_dir(), args.rounds,
                     args.threads)  # fmt: skip
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
