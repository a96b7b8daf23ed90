"""Trace, reload, prove parity, then write the model directory in one atomic step.

The artefact is only written when the reloaded TorchScript file agrees with the
eager model on a batch whose size and lengths differ from the tracing example,
so a shape baked into the graph by tracing cannot slip through.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import nn

from predictor.modelcard import ServingCard
from predictor.tokenization import Encoded, encode, load_tokenizer

PARITY_TOLERANCE = 1e-4
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
class ExportReport:
    max_abs_diff: float
    eager_ms: float  # one forward pass of the parity batch
    torchscript_ms: float


def _best_of(module: nn.Module, batch: Encoded, repeat: int = 5) -> float:
    """Fastest of a few forward passes, in ms: the steady-state cost, not the first-call one."""
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeat):
            start = time.perf_counter()
            module(batch.input_ids, batch.attention_mask)
            best = min(best, time.perf_counter() - start)
    return best * 1000


def export(
    module: nn.Module,
    card: ServingCard,
    tokenizer_json: str,
    out: Path,
    tolerance: float = PARITY_TOLERANCE,
) -> ExportReport:
    """Write model.pt, tokenizer.json and model_card.json to `out`, or raise ParityError.

    An empty `card.version` becomes `YYYYMMDD-<sha8 of model.pt>`: a new artefact
    gets a new version, and with it new cache keys.
    """
    module = module.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
        tokenizer = load_tokenizer(
            staging / "tokenizer.json", card.max_seq_length, card.pad_token_id, card.pad_token
        )
        example = encode(tokenizer, list(TRACE_TEXTS))
        with torch.inference_mode(), warnings.catch_warnings():
            # Tracer warnings flag Python branches frozen into the graph; the
            # parity check below, on other shapes, is what decides if they matter.
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(
                module, (example.input_ids, example.attention_mask), check_trace=False
            )
        traced.save(str(staging / "model.pt"))
        reloaded = torch.jit.load(str(staging / "model.pt"), map_location="cpu").eval()

        probe = encode(tokenizer, list(PARITY_TEXTS))
        with torch.inference_mode():
            eager = module(probe.input_ids, probe.attention_mask)
            scripted = reloaded(probe.input_ids, probe.attention_mask)
        diff = float((eager - scripted).abs().max())
        if not diff <= tolerance:  # also refuses NaN
            raise ParityError(
                f"TorchScript output differs from eager by {diff:.3g} (> {tolerance:g}); "
                f"refusing to write {out}"
            )
        report = ExportReport(diff, _best_of(module, probe), _best_of(reloaded, probe))

        digest = hashlib.sha256((staging / "model.pt").read_bytes()).hexdigest()
        now = datetime.now(UTC)
        fields = card.model_dump()
        fields.update(
            version=card.version or f"{now:%Y%m%d}-{digest[:8]}",
            model_sha256=digest,
            parity_max_abs_diff=diff,
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
