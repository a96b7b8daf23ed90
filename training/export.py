"""Trace, reload, prove parity, then write the model directory in one atomic step.

The artefact is only written when the reloaded TorchScript file agrees with the
eager model on a batch whose size and lengths differ from the tracing example,
so a shape baked into the graph by tracing cannot slip through.

A second file, model-bf16.pt, is traced under CPU autocast to bfloat16: on a
CPU with native bf16 (AVX512-BF16, AMX) it is about twice as fast at a batch
of 8. It gets its own parity check (against the eager model under the same
autocast) and an agreement check against fp32 on held-out texts; below
`BF16_MIN_AGREEMENT` same labels it is not written (the predictor then serves
fp32), and the card records what was measured either way.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from torch import nn
from tqdm import tqdm

from predictor.modelcard import PRECISION_FILES, ServingCard
from predictor.tokenization import Encoded, encode, load_tokenizer
from training.train import bf16_autocast

PARITY_TOLERANCE = 1e-4
# bf16 keeps 8 mantissa bits: eager and traced run the same casts, but not always the same
# kernels, so their logits may differ in the last bf16 bit (~0.4 % of their size).
BF16_PARITY_TOLERANCE = 5e-2
BF16_MIN_AGREEMENT = 0.99
AGREEMENT_TEXTS = 512  # held-out texts for bf16 vs fp32: 0.2 % resolution, ~2 % of a quick build
AGREEMENT_BATCH = 64
TRACE_TEXTS = ("trace me", "a second, longer example so the batch needs padding")
PARITY_TEXTS = (
    "I love this!",
    "worst service ever, never again",
    "the meeting is at 3pm",
    "ok",
    "Driverless cars are not worth the risk. Don't want one, not now and not in ten years.",
)


class ParityError(RuntimeError):
    """The traced model disagrees with the eager one; nothing was written."""


@dataclass(frozen=True)
class Bf16Report:
    """The bf16 artefact's checks; `written` is False when agreement was too low."""

    parity_max_abs_diff: float
    agreement: float  # share of texts with the same top label as fp32
    max_prob_diff: float  # largest |p_bf16 - p_fp32| over texts and labels
    n_texts: int
    written: bool
    seconds: float  # trace + checks, what bf16 adds to the export


@dataclass(frozen=True)
class ExportReport:
    max_abs_diff: float
    eager_ms: float  # one forward pass of the parity batch
    torchscript_ms: float
    bf16: Bf16Report | None = None


def _best_of(module: nn.Module, batch: Encoded, repeat: int = 5) -> float:
    """Fastest of a few forward passes, in ms: the steady-state cost, not the first-call one."""
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeat):
            start = time.perf_counter()
            module(batch.input_ids, batch.attention_mask)
            best = min(best, time.perf_counter() - start)
    return best * 1000


def _trace_and_check(
    module: nn.Module,
    tokenizer: Tokenizer,
    path: Path,
    precision: str,
    tolerance: float,
) -> tuple[torch.jit.ScriptModule, float]:
    """Trace at `precision`, save, reload, and compare with eager at the same precision."""
    example = encode(tokenizer, list(TRACE_TEXTS))
    with torch.inference_mode(), warnings.catch_warnings(), bf16_autocast(precision == "bf16"):
        # Tracer warnings flag Python branches frozen into the graph; the
        # parity check below, on other shapes, is what decides if they matter.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(
            module, (example.input_ids, example.attention_mask), check_trace=False
        )
    traced.save(str(path))
    reloaded = torch.jit.load(str(path), map_location="cpu").eval()
    probe = encode(tokenizer, list(PARITY_TEXTS))
    with torch.inference_mode():
        with bf16_autocast(precision == "bf16"):
            eager = module(probe.input_ids, probe.attention_mask).float()
        scripted = reloaded(probe.input_ids, probe.attention_mask).float()  # no autocast
    diff = float((eager - scripted).abs().max())
    if not diff <= tolerance:  # also refuses NaN
        raise ParityError(
            f"{precision} TorchScript output differs from eager by {diff:.3g} "
            f"(> {tolerance:g}); refusing to write {path.parent.name}"
        )
    return reloaded, diff


def _probabilities(
    model: torch.jit.ScriptModule, tokenizer: Tokenizer, texts: list[str], desc: str
) -> torch.Tensor:
    """float32 softmax over the labels, [len(texts), labels], batch by batch in text order."""
    chunks = []
    starts = range(0, len(texts), AGREEMENT_BATCH)
    with torch.inference_mode():
        for start in tqdm(starts, desc=desc, unit="batch", leave=False):
            batch = encode(tokenizer, texts[start : start + AGREEMENT_BATCH])
            logits = model(batch.input_ids, batch.attention_mask).float()
            chunks.append(torch.softmax(logits, dim=-1))
    return torch.cat(chunks)


def _export_bf16(
    module: nn.Module,
    tokenizer: Tokenizer,
    staging: Path,
    fp32: torch.jit.ScriptModule,
    heldout: Sequence[str],
    min_agreement: float,
) -> Bf16Report:
    """Write model-bf16.pt next to model.pt if it agrees with fp32 on `heldout`; else remove it."""
    start = time.perf_counter()
    path = staging / PRECISION_FILES["bf16"]
    bf16, diff = _trace_and_check(module, tokenizer, path, "bf16", BF16_PARITY_TOLERANCE)
    texts = list(heldout[:AGREEMENT_TEXTS]) or [*PARITY_TEXTS, *TRACE_TEXTS]
    texts.sort(key=len)  # similar lengths per batch: little padding, same for both models
    p32 = _probabilities(fp32, tokenizer, texts, "agreement fp32")
    p16 = _probabilities(bf16, tokenizer, texts, "agreement bf16")
    agreement = float((p32.argmax(-1) == p16.argmax(-1)).float().mean())
    written = agreement >= min_agreement
    if not written:
        path.unlink()
    return Bf16Report(
        parity_max_abs_diff=diff,
        agreement=agreement,
        max_prob_diff=float((p32 - p16).abs().max()),
        n_texts=len(texts),
        written=written,
        seconds=time.perf_counter() - start,
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def content_sha256(model: torch.jit.ScriptModule, tokenizer_json: str) -> str:
    """SHA-256 of what decides the answers: every weight and buffer (name, dtype, shape,
    bytes, in name order) and the tokenizer.

    Not the file's hash: torch writes a fresh serialization id into every save, the
    absolute paths of the traced sources into its debug records, and per-process name
    mangling into its code, so identical builds never give identical files. The version
    is derived from this digest instead: the same seed, data and code give the same
    version, and so the same cache keys, wherever and however often the build runs. The
    card's `model_sha256` stays the plain file hash, for integrity.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    digest.update(tokenizer_json.encode("utf-8"))
    return digest.hexdigest()


def _precisions_card(staging: Path, fp32_diff: float, bf16: Bf16Report | None) -> dict[str, Any]:
    """Per precision: its file and checks, or why it was not written."""
    out: dict[str, Any] = {
        "fp32": {
            "file": PRECISION_FILES["fp32"],
            "sha256": _sha256(staging / PRECISION_FILES["fp32"]),
            "parity_max_abs_diff": fp32_diff,
        }
    }
    if bf16 is not None:
        checks = {k: v for k, v in asdict(bf16).items() if k not in ("written", "seconds")}
        checks["min_agreement"] = BF16_MIN_AGREEMENT
        if bf16.written:
            path = staging / PRECISION_FILES["bf16"]
            out["bf16"] = {"file": path.name, "sha256": _sha256(path), **checks}
        else:
            out["bf16"] = {
                "file": None,
                "refused": "agreement with fp32 below the minimum",
                **checks,
            }
    return out


def export(
    module: nn.Module,
    card: ServingCard,
    tokenizer_json: str,
    out: Path,
    tolerance: float = PARITY_TOLERANCE,
    *,
    heldout: Sequence[str] = (),
    bf16: bool = True,
    bf16_min_agreement: float = BF16_MIN_AGREEMENT,
) -> ExportReport:
    """Write model.pt (+ model-bf16.pt), tokenizer.json and model_card.json to `out`,
    or raise ParityError.

    `heldout` are texts the model did not train on, for the bf16 agreement check
    (without them the parity texts stand in, which says little). An empty
    `card.version` becomes `YYYYMMDD-<sha8 of weights + tokenizer>` (`content_sha256`): a
    new artefact gets a new version, and with it new cache keys.
    """
    module = module.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
        tokenizer = load_tokenizer(
            staging / "tokenizer.json", card.max_seq_length, card.pad_token_id, card.pad_token
        )
        reloaded, diff = _trace_and_check(
            module, tokenizer, staging / PRECISION_FILES["fp32"], "fp32", tolerance
        )
        probe = encode(tokenizer, list(PARITY_TEXTS))
        bf16_report = (
            _export_bf16(module, tokenizer, staging, reloaded, heldout, bf16_min_agreement)
            if bf16
            else None
        )
        report = ExportReport(diff, _best_of(module, probe), _best_of(reloaded, probe), bf16_report)

        digest = _sha256(staging / PRECISION_FILES["fp32"])
        content = content_sha256(reloaded, tokenizer_json)
        now = datetime.now(UTC)
        fields = card.model_dump()
        fields.update(
            version=card.version or f"{now:%Y%m%d}-{content[:8]}",
            model_sha256=digest,
            model_content_sha256=content,
            parity_max_abs_diff=diff,
            precisions=_precisions_card(staging, diff, bf16_report),
            created_at=now.isoformat(timespec="seconds"),
            torch_version=torch.__version__,
        )
        (staging / "model_card.json").write_text(json.dumps(fields, indent=2) + "\n")
        ServingCard.read(staging)  # what the predictor will read must validate
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
        return report
    finally:
        shutil.rmtree(staging, ignore_errors=True)
