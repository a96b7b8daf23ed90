"""The Engine: sole owner of the tokenizer, the TorchScript model and its thread.

Everything that touches the model runs on one dedicated worker thread, so the
event loop never waits on tokenising or a forward pass, and torch sees one
caller (its intra-op pool does the parallel work).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from predictor.hardware import cpu_has_native_bf16, default_cpu_threads
from predictor.modelcard import (
    CARD_FILE,
    PRECISION_FILES,
    ModelCardError,
    ServingCard,
    check_model_dir,
)
from predictor.settings import ServingSettings
from predictor.tokenization import encode, load_tokenizer

log = logging.getLogger(__name__)

WARMUP_TEXTS = (
    "warming up the model",
    "a slightly longer sentence so the warm-up batch has more than one length in it",
)


# Largest probability difference a frozen graph may show against its file: fp32 must agree
# to rounding; reduced precisions reorder and fuse bf16/fp16 arithmetic (the export's own
# bf16 check allows 1e-2 against fp32).
FREEZE_TOLERANCE = {"fp32": 1e-4, "bf16": 2e-2, "fp16": 2e-2}


FREEZE_PROBES = (["a short probe"], ["i love it", "not good at all, sadly", "on my way home now"])


class ModelLoadError(RuntimeError):
    """The model directory is missing, incomplete or produced a bad warm-up batch."""


@dataclass(frozen=True)
class BatchResult:
    """Probabilities for a batch, in the order the texts were given."""

    probabilities: np.ndarray  # float32 [N, num_labels]
    truncated: list[bool]  # the tokenizer cut the text to max_seq_length
    seconds: float  # tokenise + forward, measured on the worker thread
    padded_length: int = 0  # tokens per row after padding to the batch's longest text
    precision: str = ""  # of the forward pass: fp32, bf16, fp16


def resolve_device(requested: str) -> str:
    """`auto` means CUDA when torch can use it; asking for CUDA without one is an error."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("PREDICTOR_DEVICE=cuda but torch sees no CUDA device")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def _check_output_width(
    model: torch.jit.ScriptModule,
    tokenizer: Tokenizer,
    card: ServingCard,
    device: str,
    model_dir: Path,
) -> None:
    """One probe text through the model: its score count must match the card's labels.

    Why: the labels come from the card alone, so a card from another model would otherwise
    name the wrong outputs (or crash the first request) instead of failing at load.
    """
    batch = encode(tokenizer, ["probe"])
    with torch.inference_mode():
        logits = model(batch.input_ids.to(device), batch.attention_mask.to(device))
    width = int(logits.shape[-1]) if logits.dim() == 2 else -1
    if width != len(card.labels):
        raise ModelLoadError(
            f"{model_dir}: model_card.json lists {len(card.labels)} labels {card.labels} but "
            f"model.pt answers {tuple(logits.shape)} per batch of 1, i.e. {width} scores per "
            "text; the card belongs to another model"
        )


def resolve_precision(settings: ServingSettings, device: str) -> str:
    """fp16 on CUDA, bf16 on a CPU with native bf16 and a bf16 artefact, else fp32."""
    requested = settings.precision
    if requested == "fp16" and device != "cuda":
        raise ModelLoadError("PREDICTOR_PRECISION=fp16 needs CUDA; on the CPU use bf16 or fp32")
    if requested != "auto":
        return requested
    if device == "cuda":
        return "fp32" if settings.half_precision is False else "fp16"
    has_file = (settings.model_dir / PRECISION_FILES["bf16"]).is_file()
    return "bf16" if has_file and cpu_has_native_bf16() else "fp32"


class Engine:
    """Loads the model directory once and runs batches on its own thread."""

    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.device = resolve_device(settings.device)
        self._precision = resolve_precision(settings, self.device)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self._model: torch.jit.ScriptModule | None = None
        self._tokenizer: Tokenizer | None = None
        self.card: ServingCard | None = None
        self.freeze_max_diff: float | None = None  # set when the frozen graph is served

    @property
    def precision(self) -> str:
        """`fp32`, `bf16` or `fp16`: part of every cache key, since the probabilities differ."""
        return self._precision

    # --- lifecycle -------------------------------------------------------
    def load(self) -> ServingCard:
        """Read the card, tokenizer and TorchScript file; blocking, call off the loop.

        Nothing is kept unless all of it is valid: a bad directory leaves the engine unloaded
        (readiness stays false) and raises ModelLoadError saying why.
        """
        model_dir: Path = self.settings.model_dir
        try:
            card = check_model_dir(model_dir)
        except ModelCardError as exc:
            raise ModelLoadError(str(exc)) from exc
        tokenizer = load_tokenizer(
            model_dir / "tokenizer.json", card.max_seq_length, card.pad_token_id, card.pad_token
        )
        if self.device == "cpu":
            threads = self.settings.cpu_threads or default_cpu_threads()
            torch.set_num_threads(threads)
        model = self._load_model(model_dir, tokenizer)
        _check_output_width(model, tokenizer, card, self.device, model_dir)
        self._model, self._tokenizer, self.card = model, tokenizer, card
        log.info(
            "loaded model %s version %s on %s, precision %s, %d torch threads, graph %s",
            card.name,
            card.version,
            self.device,
            self.precision,
            torch.get_num_threads(),
            "as exported"
            if self.freeze_max_diff is None
            else f"frozen (max probability difference {self.freeze_max_diff:.1e})",
        )
        return card

    def _load_model(self, model_dir: Path, tokenizer: Tokenizer) -> torch.jit.ScriptModule:
        """The file exported for this precision; fp16 is the fp32 file halved on the GPU."""
        name = PRECISION_FILES["bf16" if self._precision == "bf16" else "fp32"]
        if not (model_dir / name).is_file():
            raise ModelLoadError(
                f"PREDICTOR_PRECISION={self._precision} but {model_dir} has no {name} "
                "(the export refused it or predates it; see the card's `precisions`)"
            )
        try:
            model = torch.jit.load(str(model_dir / name), map_location=self.device).eval()
        except RuntimeError as exc:
            raise ModelLoadError(f"{model_dir / name} is not a TorchScript file: {exc}") from exc
        model = model.half() if self._precision == "fp16" else model
        if self.settings.freeze and self.device == "cpu":
            return self._frozen(model, tokenizer)
        return model

    def _frozen(
        self, model: torch.jit.ScriptModule, tokenizer: Tokenizer
    ) -> torch.jit.ScriptModule:
        """The graph frozen (weights inlined as constants) and optimised for inference, which
        drops the per-call attribute lookups and fuses ops: the bf16 file as exported is slower
        than fp32 at batch 1 until frozen. Kept only if it agrees with the file on probe
        batches of two shapes; otherwise the file is served as it is, and the log says why."""
        try:
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(model))
        except RuntimeError as exc:  # a graph freeze cannot handle: serve the file unchanged
            log.warning("serving the graph unfrozen: torch.jit.freeze failed (%s)", exc)
            return model
        tolerance = FREEZE_TOLERANCE[self._precision]
        worst = 0.0
        with torch.inference_mode():
            for texts in FREEZE_PROBES:
                batch = encode(tokenizer, list(texts))
                ids, mask = batch.input_ids, batch.attention_mask
                want = torch.softmax(model(ids, mask).float(), dim=-1)
                got = torch.softmax(frozen(ids, mask).float(), dim=-1)
                worst = max(worst, float((want - got).abs().max()))
        if worst > tolerance:
            log.warning(
                "serving the graph unfrozen: frozen probabilities differ by %.2e (> %.0e)",
                worst,
                tolerance,
            )
            return model
        self.freeze_max_diff = worst
        return frozen

    def warmup(self) -> None:
        """Run a few batches so the first real request does not pay for lazy init."""
        for _ in range(self.settings.warmup_batches):
            result = self.infer(list(WARMUP_TEXTS))
            if not np.all(np.isfinite(result.probabilities)):
                raise ModelLoadError("warm-up produced non-finite probabilities")

    async def load_and_warm(self) -> ServingCard:
        """Load and warm on the engine's own thread, so torch state is created where it runs."""

        def work() -> ServingCard:
            self._await_model_dir()
            card = self.load()
            self.warmup()
            return card

        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def _await_model_dir(self) -> None:
        """KServe's `MODEL_INIT_MODE=async` (a modelcar links its files into /mnt/models while
        the predictor starts): wait for the card, bounded, instead of failing the first look
        and being restarted with back-off. Polled, on the engine thread; `sync` looks once."""
        s = self.settings
        if s.model_init_mode != "async":
            return
        card = s.model_dir / CARD_FILE
        deadline = time.monotonic() + s.model_wait_s
        if not card.is_file():
            log.info("MODEL_INIT_MODE=async: waiting up to %g s for %s", s.model_wait_s, card)
        while not card.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)

    def shutdown(self) -> None:
        """Let the worker finish what it has, then stop it."""
        self._executor.shutdown(wait=True)

    # --- work ------------------------------------------------------------
    def infer(self, texts: list[str]) -> BatchResult:
        """Tokenise, pad to the longest text of the batch, run the model: blocking."""
        if self._model is None or self._tokenizer is None:
            raise ModelLoadError("engine used before load()")
        start = time.perf_counter()
        batch = encode(self._tokenizer, texts)
        with torch.inference_mode():
            logits = self._model(
                batch.input_ids.to(self.device), batch.attention_mask.to(self.device)
            )
            probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return BatchResult(
            probs,
            batch.truncated,
            time.perf_counter() - start,
            padded_length=int(batch.input_ids.shape[-1]),
            precision=self.precision,
        )

    async def run(self, texts: list[str]) -> BatchResult:
        """Hand a batch to the worker thread and await it without blocking the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.infer, texts)
