"""Serving settings: one pydantic-settings class, read once at start.

Every field can be set as `PREDICTOR_<FIELD>` in the environment or in a `.env`
file; nothing else in the predictor reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field

from predictor.settings_base import PredictorSettings

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "sentiment"


class ServingSettings(PredictorSettings):
    """How the predictor loads the model, batches work and guards its inputs."""

    model_dir: Path = Field(
        DEFAULT_MODEL_DIR,
        description="Model directory written by `make model`: model.pt, tokenizer.json, "
        "model_card.json.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="`auto` takes CUDA when torch sees a GPU, else the CPU."
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="Numeric precision of the forward pass. `auto`: fp16 on CUDA; bf16 on a "
        "CPU whose oneDNN reports native bf16 (AVX512-BF16/AMX) when the model directory has "
        "model-bf16.pt; else fp32. fp16 needs CUDA.",
    )
    half_precision: bool | None = Field(
        None,
        description="Deprecated, use PREDICTOR_PRECISION. Only `false` has an effect: with "
        "precision `auto` it keeps CUDA at fp32, as it used to.",
    )
    cpu_threads: int = Field(
        0,
        ge=0,
        description="torch intra-op threads on the CPU; 0 means one per available core "
        "(affinity and cgroup CPU quota), not per core of the node.",
    )
    max_batch_size: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Most texts coalesced into one forward pass. Unset: 16 on the CPU at fp32, "
        "32 at bf16 (what won the served sweep at 64 clients on short tweets without losing on "
        "long ones, `python -m loadtest.sweep`), 64 on CUDA (see README).",
    )
    max_batch_delay_ms: float = Field(
        0.0,
        ge=0.0,
        le=1000.0,
        description="How long the first text of a batch waits for company. 0 batches only "
        "what queued while the model was busy, which adds no latency when idle.",
    )
    batch_length_window: int = Field(
        2,
        ge=1,
        le=64,
        description="In batches: when more texts wait than one batch holds, the oldest "
        "this-many batches' worth are grouped by length (less padding per forward pass). "
        "1 keeps arrival order. Measured at 64 clients on 2 CPU cores: 2 gave about +7% "
        "throughput for +10% p99; 8 gave +13% but doubled p99 (long texts wait longer).",
    )
    max_queue_texts: int = Field(
        4096,
        ge=1,
        description="Texts waiting for the model beyond which requests are shed with 503 "
        "rather than queued into timeouts.",
    )
    max_instances: int = Field(256, ge=1, description="Most texts in one request; more is a 400.")
    max_text_chars: int = Field(
        4096,
        ge=16,
        description="Characters per text kept before tokenising; longer texts are cut (and "
        "flagged). Guards the tokenizer, which tokenises everything before truncating.",
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest request body (REST) or message (gRPC); more is a 413.",
    )
    warmup_batches: int = Field(
        2, ge=0, description="Forward passes run before `ready` turns true."
    )
    model_init_mode: Literal["sync", "async"] = Field(
        "sync",
        validation_alias=AliasChoices("MODEL_INIT_MODE", "PREDICTOR_MODEL_INIT_MODE"),
        description="KServe's own variable (`MODEL_INIT_MODE`, set to `async` for an oci:// "
        "modelcar, whose files may appear after the predictor starts): `async` waits up to "
        "PREDICTOR_MODEL_WAIT_S for the model directory instead of exiting at once.",
    )
    model_wait_s: float = Field(
        180.0,
        gt=0,
        description="With MODEL_INIT_MODE=async, how long to wait for the model directory "
        "(keep it within the startup probe's budget).",
    )
    freeze: bool = Field(
        True,
        description="Freeze the TorchScript graph at load (torch.jit.freeze + "
        "optimize_for_inference on the CPU), kept only if it answers as the file does on "
        "probe texts. Measured on 2 cores: bf16 at batch 1 5.8 -> 3.4 ms (see README).",
    )
    drain_timeout_s: float = Field(
        30.0,
        gt=0,
        description="On SIGTERM, the whole drain: requests in flight and queued, then the "
        "write-behind flush (PREDICTOR_DRAIN_FLUSH_S of it). What is still queued when the "
        "request part runs out is answered 503 'shutting down'. Keep the pod's "
        "terminationGracePeriodSeconds at least preStop sleep + this.",
    )
    request_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Longest an inference request may wait for its answer (KServe's default "
        "InferenceService timeout); a request still waiting then gets 504 and its queued texts "
        "never reach the model. A client can ask for less with the `x-request-timeout` header "
        "(seconds) on REST or its own gRPC deadline, never for more.",
    )
    access_log: bool = Field(
        True, description="One JSON line per request (health and metrics excluded)."
    )
    enable_repository_api: bool = Field(
        False,
        description="Expose KServe's unauthenticated model load/unload endpoints. Off: an "
        "unload would leave the pod serving errors while looking ready.",
    )

    # --- hostile clients: connection limits and the drain budget (issue 10) ---
    drain_flush_s: float = Field(
        5.0,
        gt=0,
        description="The part of PREDICTOR_DRAIN_TIMEOUT_S kept for flushing write-behind "
        "cache writes after the last request (at most half of it).",
    )
    http_max_head_bytes: int = Field(
        64 * 1024,
        ge=4096,
        description="Largest request line + headers of one HTTP request; more is 431 (414 for "
        "the target alone), answered before the rest is read.",
    )
    http_header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="From a request's first byte to its last header; a slower client gets "
        "408 and is closed (slowloris). A load balancer sends a head in one write.",
    )
    http_body_timeout_s: float = Field(
        30.0,
        gt=0,
        description="From a request's last header to the last byte of its body; a slower "
        "body gets 408 and the connection is closed (slow body, R-U-Dead-Yet). 30 s carries "
        "the 4 MiB body cap at about 1.1 Mbit/s. gRPC: the same deadline for a call's request "
        "message, else the call is cancelled (DEADLINE_EXCEEDED).",
    )
    http_keep_alive_s: float | None = Field(
        None,
        gt=0,
        description="Idle seconds an HTTP connection is kept between requests (and before "
        "its first one). Unset: KServe's --timeout_keep_alive flag (default 65, above the "
        "60 s idle timeout of common load balancers, so the balancer closes first).",
    )
    http_max_connections: int = Field(
        1024,
        ge=1,
        description="Open HTTP connections at which a new one first makes room: a connection "
        "with no request being served is closed (408 when a request was under way), first "
        "those never answered (stalled heads and bodies), oldest first, then idle keep-alive "
        "ones, answered longest ago first; only when every connection has a request being "
        "served does the new one get 503.",
    )

    def drain_budget(self) -> tuple[float, float]:
        """(request part, flush part) of the drain; together exactly `drain_timeout_s`."""
        flush = min(self.drain_flush_s, self.drain_timeout_s / 2)
        return self.drain_timeout_s - flush, flush

    def batch_size_for(self, device: str, precision: str = "fp32") -> int:
        """The batch cap in effect for a device and precision, honouring an explicit setting.

        On the CPU the caps come from the served sweep (`python -m loadtest.sweep`, 64
        clients, 2 quiet cores, frozen graphs, 2026-12-03), held-out / short texts/s:
        fp32 cap 8: 166 / 236, 16: 175 / 272, 32: 145 / 282; bf16 cap 16: 337 / 482,
        32: 347 / 599, 64: 247 / 553. The pick is the most short-tweet throughput within
        5 % of the best on long texts.
        """
        if self.max_batch_size is not None:
            return self.max_batch_size
        if device == "cuda":
            return 64
        return 32 if precision == "bf16" else 16
