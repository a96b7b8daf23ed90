"""`make bench` / `python -m loadtest.bench`: the predictor against its ceiling and baselines.

One run, one machine, the same texts for every step, so the ratios hold even
where absolute numbers drift between (shared, noisy) machines:

For each precision (fp32, and bf16 where the model directory has it):

1. ceiling: the TorchScript file of that precision in this process, tokenise +
   forward, at its best batch size (forward-only figures alongside);
2. the predictor at that precision, dynamic batching, cache off, unique texts,
   concurrency 1/16/64;
3. the usual KServe pattern (loadtest/baselines/per_request.py): one forward
   per request in `predict`, stock ModelServer, same file;

3b. once, KServe's huggingfaceserver pattern (loadtest/baselines/hf_eager.py):
   eager transformers in fp32 with the HF tokenizer, per request, same weights;

then once:

4. the predictor with the Redis feature store, Zipf hot set (cache-hit path);
5. a no-op model on the predictor's server (loadtest/baselines/noop.py): the floor.

Writes report.md, bench.json and PNGs under loadtest/results/ (loadtest/report.py)
and prints the ratios against the targets of issues 6 and 13 (loadtest/outcome.py).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.process import REPO, poll
from harness.servers import REDIS_BIN, PredictorProcess, RedisServer
from loadtest.baselines.hf_eager import source_encoder
from loadtest.baselines.per_request import PerRequestModel
from loadtest.clients import Wire
from loadtest.corpus import TextPool, hot_set, load_pool, unique_texts
from loadtest.measure import measure
from loadtest.outcome import HF_EAGER_STEP, Bench, CeilingPoint, ratios
from loadtest.report import ratio_table, summary_table, write_report
from loadtest.stats import Summary
from predictor.hardware import default_cpu_threads
from predictor.modelcard import PRECISION_FILES, ServingCard
from predictor.tokenization import encode

RESULTS = REPO / "loadtest" / "results"
TINY_MODEL = Path("/tmp/tinymodel")


@dataclass(frozen=True)
class Config:
    """One run's knobs; every field has the default `make bench` uses."""

    model_dir: Path
    out: Path = RESULTS
    threads: int = 0  # torch threads, 0 = the predictor's default
    seconds: float = 15.0
    concurrency: tuple[int, ...] = (1, 16, 64)
    hit_concurrency: tuple[int, ...] = (16, 64)
    hot_size: int = 500
    batch_sizes: tuple[int, ...] = (1, 4, 8, 16, 32, 64)
    ceiling_seconds: float = 4.0
    warmup_seconds: float = 3.0
    wire: Wire = Wire.V1
    precisions: tuple[str, ...] = ("fp32", "bf16")
    profile: bool = False
    server_env: dict[str, str] = field(default_factory=dict)
    max_requests: int = 1_000_000
    hf_eager: bool = True  # step (3b)


def torch_threads(cfg: Config) -> int:
    """The same intra-op thread count for the ceiling, the predictor and the baseline."""
    return cfg.threads or default_cpu_threads()


# --- (1) the ceiling --------------------------------------------------------------
def measure_ceiling(cfg: Config, pool: TextPool, precision: str) -> list[CeilingPoint]:
    """Batches of unique texts through tokenizer + TorchScript, in this process."""
    torch.set_num_threads(torch_threads(cfg))
    model = PerRequestModel("ceiling", cfg.model_dir, precision)
    model.load()
    points = []
    for size in cfg.batch_sizes:
        texts = unique_texts(pool)
        _forward(model, [next(texts) for _ in range(size)])  # warm this shape
        total = forward_s = 0.0
        batches = 0
        while total < cfg.ceiling_seconds:
            t0 = time.perf_counter()
            forward_s += _forward(model, [next(texts) for _ in range(size)])
            total += time.perf_counter() - t0
            batches += 1
        points.append(
            CeilingPoint(size, batches * size / total, batches * size / forward_s, batches)
        )
        print(f"  {precision} ceiling batch {size:3d}: {points[-1].texts_per_s:8.1f} texts/s",
              flush=True)  # fmt: skip
    return points


def _forward(model: PerRequestModel, texts: list[str]) -> float:
    """Tokenise and run one batch; returns the seconds the forward pass alone took."""
    batch = encode(model.tokenizer, texts)
    t0 = time.perf_counter()
    with torch.inference_mode():
        torch.softmax(model.model(batch.input_ids, batch.attention_mask).float(), dim=-1)
    return time.perf_counter() - t0


# --- servers ------------------------------------------------------------------
@contextmanager
def serving(cfg: Config, module: str, name: str, env: dict[str, str]) -> Iterator[PredictorProcess]:
    env = {"PREDICTOR_CPU_THREADS": str(torch_threads(cfg)), **cfg.server_env, **env}
    proc = PredictorProcess(cfg.model_dir, cfg.out / f"{name}.log", env=env, module=module)
    proc.start()
    try:
        yield proc.wait_ready(120)
    finally:
        proc.stop()


@contextmanager
def profiling(cfg: Config, proc: PredictorProcess, step: str, c: int) -> Iterator[None]:
    """py-spy over the server for the length of one point, when asked for and installed."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if not cfg.profile or spy is None or proc.pid is None:
        yield
        return
    out = cfg.out / f"profile-{step.replace(' ', '-')}-c{c}.svg"
    cmd = [spy, "record", "--pid", str(proc.pid), "--duration", str(int(cfg.seconds)),
           "--rate", "200", "--output", str(out), "--threads", "--nonblocking"]  # fmt: skip
    spy_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        spy_proc.wait(cfg.seconds + 30)


async def point(
    cfg: Config,
    proc: PredictorProcess,
    workload: Iterator[str],
    label: str,
    seconds: float | None = None,
    max_requests: int | None = None,
    **mode: Any,
) -> Summary:
    """One measured point against `proc`; `mode` is concurrency=N or rate=R."""
    return await measure(
        cfg.wire, workload, url=proc.url, grpc_target=proc.grpc_target,
        max_requests=max_requests or cfg.max_requests, max_seconds=seconds or cfg.seconds,
        label=label, progress=False, **mode,
    )  # fmt: skip


def show(s: Summary) -> Summary:
    print(
        f"  {s.label:28s} {s.texts_per_s:8.1f} texts/s  p50 {s.p50_ms or 0:7.2f} ms  "
        f"p99 {s.p99_ms or 0:7.2f} ms  errors {sum(s.errors.values())}",
        flush=True,
    )
    return s


async def run_points(
    cfg: Config,
    proc: PredictorProcess,
    step: str,
    texts: Callable[[], Iterator[str]],
    concurrencies: tuple[int, ...],
    profile_at: int | None = None,
) -> list[Summary]:
    """Warm the server up, then one closed-loop point per concurrency, same texts each."""
    top = max(concurrencies)
    await point(cfg, proc, texts(), "warm-up", cfg.warmup_seconds, concurrency=top)
    out = []
    for c in concurrencies:
        spy = profiling(cfg, proc, step, c) if c == profile_at else nullcontext()
        with spy:
            out.append(show(await point(cfg, proc, texts(), f"{step} c={c}", concurrency=c)))
    return out


async def prime_cache(cfg: Config, proc: PredictorProcess, redis: RedisServer,
                      pool: TextPool) -> None:  # fmt: skip
    """Send every hot-set text once, then wait until write-behind has put them all in Redis."""
    texts = pool.texts[: cfg.hot_size]
    await point(cfg, proc, iter(texts), "prime", 120, max_requests=len(texts), concurrency=16)
    client = redis.client()
    await asyncio.to_thread(poll, lambda: client.dbsize() >= len(set(texts)), 60.0,
                            "write-behind of the primed hot set")  # fmt: skip


async def run_precision(cfg: Config, pool: TextPool, bench: Bench, precision: str) -> None:
    """Steps (2) and (3) at one precision, the predictor told it by PREDICTOR_PRECISION."""

    def unique() -> Iterator[str]:
        return unique_texts(pool)

    env = {"PREDICTOR_PRECISION": precision}
    name = f"predictor {precision}"
    print(f"(2) {name}, dynamic batching, cache off, unique texts", flush=True)
    with serving(cfg, "predictor", name, {**env, "PREDICTOR_CACHE_ENABLED": "false"}) as p:
        top = max(cfg.concurrency)
        bench.steps[name] = await run_points(cfg, p, name, unique, cfg.concurrency, top)
        best = bench.point(name, top)
        if best is not None and best.texts_per_s > 0:
            rate = round(0.7 * best.requests_per_s, 1)
            s = show(await point(cfg, p, unique(), f"{name} open {rate:g}/s", rate=rate))
            bench.steps[f"{name} open-loop"] = [s]

    name = f"per-request {precision}"
    print(f"(3) {name}: usual KServe pattern, one forward per request", flush=True)
    with serving(cfg, "loadtest.baselines.per_request", name, env) as p:
        bench.steps[name] = await run_points(cfg, p, name, unique, cfg.concurrency)


async def run_shared(cfg: Config, pool: TextPool, bench: Bench) -> None:
    """Steps (4) and (5): the cache-hit path and its floor, at the predictor's own choice."""

    def hot() -> Iterator[str]:
        return hot_set(pool, cfg.hot_size, seed=1)

    print("(4) predictor + Redis feature store, Zipf hot set", flush=True)
    if not Path(REDIS_BIN).exists():
        bench.notes.append("step (4) skipped: redis-server is not installed (apt-get install "
                           "redis-server)")  # fmt: skip
    else:
        redis = RedisServer(cfg.out).start()
        try:
            env = {"PREDICTOR_REDIS_URL": redis.url(), "PREDICTOR_CACHE_ENABLED": "true"}
            with serving(cfg, "predictor", "predictor-redis", env) as p:
                try:
                    await prime_cache(cfg, p, redis, pool)
                except TimeoutError as exc:  # a slow machine: hits are fewer, the table says
                    bench.notes.append(f"step (4): priming incomplete ({exc})")
                bench.steps["redis-hit"] = await run_points(
                    cfg, p, "redis-hit", hot, cfg.hit_concurrency, cfg.hit_concurrency[0]
                )
            if not (redis.server and redis.server.running()):
                bench.notes.append(
                    "step (4): redis-server exited during the run (something outside the "
                    "benchmark stopped it); its figures are the fallback path, not the hit path"
                )
        finally:
            redis.stop()

    print("(5) no-op model on the predictor's server (framework floor)", flush=True)
    with serving(cfg, "loadtest.baselines.noop", "noop", {"PREDICTOR_CACHE_ENABLED": "false"}) as p:
        bench.steps["noop"] = await run_points(cfg, p, "noop", hot, cfg.hit_concurrency)


async def run_hf_eager(cfg: Config, pool: TextPool, bench: Bench) -> None:
    """Step (3b): KServe's huggingfaceserver pattern on the same weights (fp32, eager)."""
    why = hf_eager_unavailable(cfg.model_dir)
    if why:
        bench.notes.append(f"step (3b) skipped: {why}")
        return
    print("(3b) huggingfaceserver pattern: eager transformers, one forward per request",
          flush=True)  # fmt: skip
    with serving(cfg, "loadtest.baselines.hf_eager", HF_EAGER_STEP, {}) as p:
        bench.steps[HF_EAGER_STEP] = await run_points(
            cfg, p, HF_EAGER_STEP, lambda: unique_texts(pool), cfg.concurrency
        )


def hf_eager_unavailable(model_dir: Path) -> str | None:
    """Why the eager baseline cannot rebuild this model, or None."""
    if importlib.util.find_spec("transformers") is None:
        return "transformers is not installed (requirements-train.txt)"
    if source_encoder(ServingCard.read(model_dir)) is None:
        return "the encoder the model card names is not on this machine"
    return None


async def run_servers(cfg: Config, pool: TextPool, bench: Bench, precisions: list[str]) -> None:
    for precision in precisions:
        await run_precision(cfg, pool, bench, precision)
    if cfg.hf_eager:
        await run_hf_eager(cfg, pool, bench)
    await run_shared(cfg, pool, bench)


# --- the run ------------------------------------------------------------------
def available_precisions(cfg: Config) -> tuple[list[str], list[str]]:
    """The asked-for precisions whose file the model directory has, and notes for the rest."""
    have, notes = [], []
    for p in cfg.precisions:
        if (cfg.model_dir / PRECISION_FILES[p]).is_file():
            have.append(p)
        else:
            notes.append(f"{p} not measured: {cfg.model_dir} has no {PRECISION_FILES[p]}")
    return have, notes


def card_agreement(model_dir: Path) -> dict[str, Any]:
    """The export's bf16-vs-fp32 check, as the model card records it."""
    extra = ServingCard.read(model_dir).model_extra or {}
    precisions = extra.get("precisions") or {}
    return dict(precisions.get("bf16") or {})


def environment(cfg: Config, pool: TextPool) -> dict[str, Any]:
    card = ServingCard.read(cfg.model_dir)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit or "unknown",
        "model": f"{card.name} {card.version} ({cfg.model_dir})",
        "cpu": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}",
        "torch": torch.__version__,
        "native bf16 (oneDNN)": bool(native),
        "torch threads": torch_threads(cfg),
        "texts": pool.source,
        "hot set": f"{cfg.hot_size} texts, Zipf exponent 1.1",
        "extra server environment": cfg.server_env or "none",
    }


def parse_args(argv: list[str] | None = None) -> Config:
    d = Config(model_dir=Path())  # the defaults, stated once
    p = argparse.ArgumentParser(prog="python -m loadtest.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="default: models/sentiment, else the tiny model at /tmp/tinymodel",
    )
    p.add_argument("--out", type=Path, default=d.out)
    p.add_argument(
        "--threads", type=int, default=d.threads, help="torch threads; 0 = the predictor's default"
    )
    p.add_argument("--seconds", type=float, default=d.seconds, help="length of each server point")
    p.add_argument("--concurrency", type=int, nargs="+", default=list(d.concurrency))
    p.add_argument("--hit-concurrency", type=int, nargs="+", default=list(d.hit_concurrency))
    p.add_argument("--hot-size", type=int, default=d.hot_size)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=list(d.batch_sizes))
    p.add_argument("--ceiling-seconds", type=float, default=d.ceiling_seconds)
    p.add_argument("--warmup-seconds", type=float, default=d.warmup_seconds)
    p.add_argument("--wire", type=Wire, choices=list(Wire), default=d.wire)
    p.add_argument(
        "--precisions",
        nargs="+",
        choices=sorted(PRECISION_FILES),
        default=list(d.precisions),
        help="steps (1)-(3) once per precision",
    )
    p.add_argument("--profile", action="store_true", help="py-spy the predictor at top load")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for every server (e.g. OMP_WAIT_POLICY=PASSIVE)",
    )
    p.add_argument("--no-hf-eager", action="store_true", help="leave out step (3b)")
    p.add_argument("--quick", action="store_true", help="short points, for a smoke run")
    a = p.parse_args(argv)  # fmt: skip
    model_dir = a.model_dir or (REPO / "models" / "sentiment")
    if a.model_dir is None and not (model_dir / "model.pt").is_file():
        print(f"{model_dir} not built (make model); using {TINY_MODEL}", file=sys.stderr)
        model_dir = TINY_MODEL
    if a.quick:
        a.seconds, a.ceiling_seconds, a.warmup_seconds = 3.0, 1.0, 1.0
    return Config(
        model_dir=model_dir.resolve(), out=a.out, threads=a.threads, seconds=a.seconds,
        concurrency=tuple(a.concurrency), hit_concurrency=tuple(a.hit_concurrency),
        hot_size=a.hot_size, batch_sizes=tuple(a.batch_sizes),
        ceiling_seconds=a.ceiling_seconds, warmup_seconds=a.warmup_seconds, wire=a.wire,
        precisions=tuple(a.precisions), profile=a.profile,
        server_env=dict(kv.split("=", 1) for kv in a.env), hf_eager=not a.no_hf_eager,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    cfg.out.mkdir(parents=True, exist_ok=True)
    pool = load_pool(cfg.model_dir)
    precisions, notes = available_precisions(cfg)
    config = {**asdict(cfg), "precisions": precisions}
    bench = Bench(config=config, environment=environment(cfg, pool), notes=notes)
    bench.agreement = card_agreement(cfg.model_dir)
    print(f"model {cfg.model_dir}; texts: {pool.source}; precisions {precisions}", flush=True)
    for precision in precisions:
        print(f"(1) {precision} ceiling: TorchScript in-process", flush=True)
        bench.ceiling[precision] = measure_ceiling(cfg, pool, precision)
    asyncio.run(run_servers(cfg, pool, bench, precisions))
    command = " ".join(["python -m loadtest.bench", *(argv if argv is not None else sys.argv[1:])])
    report = write_report(bench, cfg.out, command)
    print()
    print(summary_table([s for steps in bench.steps.values() for s in steps]))
    print()
    print(ratio_table(ratios(bench)))
    for n in bench.notes:
        print(f"note: {n}")
    print(f"\nreport: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
