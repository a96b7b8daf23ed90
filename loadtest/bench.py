"""`make bench` / `python -m loadtest.bench`: the predictor against its ceiling and baselines.

One run, one machine, the same texts for every step, so the ratios hold even
where absolute numbers drift between (shared, noisy) machines. Every step runs on
each workload (`--workloads`): `held-out` (the texts the model did not train on)
and `short` (their shorter half by token count, closer to production tweets).

For each precision (fp32, and bf16 where the model directory has it):

1. ceiling: the TorchScript file of that precision in this process, tokenise +
   forward, as exported and frozen (torch.jit.freeze + optimize_for_inference, as
   the Engine serves it), at the best batch size of either (forward-only alongside);
2. the predictor at that precision, dynamic batching, cache off, unique texts,
   concurrency 1/16/64, and one open-loop point;
3. the usual KServe pattern (loadtest/baselines/per_request.py): one forward
   per request in `predict`, stock ModelServer, same file, at the top concurrency;

once:

1b. the huggingfaceserver pattern's batch-1 latency in this process (HF tokenizer +
   transformers forward, fp32), beside ours;
3b. KServe's huggingfaceserver pattern (loadtest/baselines/hf_eager.py) served:
   transformers' AutoModelForSequenceClassification, fp32, per request, same weights;
4. the predictor with the Redis feature store, Zipf hot set (cache-hit path);
5. a no-op model on the predictor's server (loadtest/baselines/noop.py): the floor.

Writes report.md, bench.json and PNGs under loadtest/results/ (loadtest/report.py)
and prints the ratios against the targets of issue 21 (loadtest/outcome.py).
About 11-13 minutes on 2 quiet cores with the defaults (loadtest/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.process import REPO, poll
from harness.servers import REDIS_BIN, PredictorProcess, RedisServer
from loadtest import spy
from loadtest.baselines.hf_eager import HfEagerModel, source_encoder
from loadtest.baselines.per_request import PerRequestModel
from loadtest.clients import Wire
from loadtest.corpus import WORKLOADS, TextPool, hot_set, load_workloads, unique_texts
from loadtest.measure import measure
from loadtest.outcome import HF_EAGER_STEP, HOT, Bench, CeilingPoint, ratios
from loadtest.report import ratio_table, summary_table, write_report
from loadtest.stats import Summary
from predictor.hardware import default_cpu_threads
from predictor.modelcard import PRECISION_FILES, ServingCard
from predictor.tokenization import encode

RESULTS = REPO / "loadtest" / "results"
TINY_MODEL = Path("/tmp/tinymodel")
WARM_CEILING_S = 0.5  # per ceiling point, besides at least three calls
Pools = dict[str, TextPool]


@dataclass(frozen=True)
class Config:
    """One run's knobs; every field has the default `make bench` uses."""

    model_dir: Path
    out: Path = RESULTS
    threads: int = 0  # torch threads, 0 = the predictor's default
    seconds: float = 12.0
    concurrency: tuple[int, ...] = (1, 16, 64)
    hit_concurrency: tuple[int, ...] = (16, 64)
    hot_size: int = 500
    batch_sizes: tuple[int, ...] = (1, 4, 8, 16, 32, 64)
    ceiling_seconds: float = 2.5
    warmup_seconds: float = 2.0
    wire: Wire = Wire.V1
    precisions: tuple[str, ...] = ("fp32", "bf16")
    workloads: tuple[str, ...] = WORKLOADS
    profile: bool = False
    profile_rate_hz: int = 100
    server_env: dict[str, str] = field(default_factory=dict)
    max_requests: int = 1_000_000
    hf_eager: bool = True  # steps (1b) and (3b)


def torch_threads(cfg: Config) -> int:
    """The same intra-op thread count for the ceiling, the predictor and the baseline."""
    return cfg.threads or default_cpu_threads()


# --- (1) the ceiling --------------------------------------------------------------
Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def graphs(module: torch.jit.ScriptModule, notes: list[str]) -> Iterator[tuple[str, Forward]]:
    """The file's graph as exported, then frozen as the Engine freezes it (if it can)."""
    yield "exported", module
    try:
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(module))
    except RuntimeError as exc:
        notes.append(f"ceiling: torch.jit.freeze failed, frozen graph not measured ({exc})")
        return
    yield "frozen", frozen


def measure_ceiling(cfg: Config, pools: Pools, precision: str,
                    notes: list[str]) -> dict[str, list[CeilingPoint]]:  # fmt: skip
    """Batches of unique texts through tokenizer + TorchScript, in this process, per workload,
    for each graph (as exported, frozen)."""
    torch.set_num_threads(torch_threads(cfg))
    model = PerRequestModel("ceiling", cfg.model_dir, precision)
    model.load()
    out: dict[str, list[CeilingPoint]] = {w: [] for w in pools}
    for graph, forward in graphs(model.model, notes):
        for workload, pool in pools.items():
            for size in cfg.batch_sizes:
                point = ceiling_point(cfg, model, forward, pool, size, graph)
                out[workload].append(point)
                print(f"  {workload:8s} {precision} {graph:8s} batch {size:3d}: "
                      f"{point.texts_per_s:8.1f} texts/s", flush=True)  # fmt: skip
    return out


def ceiling_point(cfg: Config, model: PerRequestModel, forward: Forward, pool: TextPool,
                  size: int, graph: str) -> CeilingPoint:  # fmt: skip
    texts = unique_texts(pool)
    # TorchScript's profiling executor specialises over the first calls, a frozen graph too
    warm, calls = time.perf_counter() + WARM_CEILING_S, 0
    while calls < 3 or time.perf_counter() < warm:
        _forward(model, forward, [next(texts) for _ in range(size)])
        calls += 1
    total = forward_s = 0.0
    batches = 0
    while total < cfg.ceiling_seconds:
        t0 = time.perf_counter()
        forward_s += _forward(model, forward, [next(texts) for _ in range(size)])
        total += time.perf_counter() - t0
        batches += 1
    return CeilingPoint(size, batches * size / total, batches * size / forward_s, batches, graph)


def _forward(model: PerRequestModel, forward: Forward, texts: list[str]) -> float:
    """Tokenise and run one batch; returns the seconds the forward pass alone took."""
    batch = encode(model.tokenizer, texts)
    t0 = time.perf_counter()
    with torch.inference_mode():
        torch.softmax(forward(batch.input_ids, batch.attention_mask).float(), dim=-1)
    return time.perf_counter() - t0


def measure_hf_batch1(cfg: Config, pools: Pools) -> dict[str, float]:
    """Step (1b): ms per text at batch 1 for the huggingfaceserver pattern, in this process
    (HF tokenizer + transformers forward + softmax, as its server runs them per request)."""
    torch.set_num_threads(torch_threads(cfg))
    model = HfEagerModel("hf-batch1", cfg.model_dir)
    model.load()
    out = {}
    for workload, pool in pools.items():
        texts = unique_texts(pool)
        for _ in range(3):
            torch.softmax(model.logits(model.tokenize([next(texts)])), dim=-1)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < cfg.ceiling_seconds:
            torch.softmax(model.logits(model.tokenize([next(texts)])), dim=-1)
            n += 1
        out[workload] = 1000 * (time.perf_counter() - t0) / n
        print(f"  {workload:8s} huggingfaceserver pattern batch 1: {out[workload]:.2f} ms",
              flush=True)  # fmt: skip
    return out


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
        f"  {s.label:36s} {s.texts_per_s:8.1f} texts/s  p50 {s.p50_ms or 0:7.2f} ms  "
        f"p99 {s.p99_ms or 0:7.2f} ms  errors {sum(s.errors.values())}",
        flush=True,
    )
    return s


async def run_points(
    cfg: Config,
    proc: PredictorProcess,
    label: str,
    texts: Callable[[], Iterator[str]],
    concurrencies: tuple[int, ...],
    bench: Bench | None = None,
) -> list[Summary]:
    """Warm the server up, then one closed-loop point per concurrency, same texts each;
    with --profile and a `bench` to keep them in, py-spy records every point."""
    await point(cfg, proc, texts(), "warm-up", cfg.warmup_seconds, concurrency=max(concurrencies))
    out = []
    record = cfg.profile and bench is not None and spy.py_spy() is not None
    for c in concurrencies:
        name = f"{label} c={c}"
        stem = cfg.out / f"profile-{name.replace(' ', '-').replace('=', '')}"
        if record and proc.pid is not None:
            with spy.recording(proc.pid, stem, cfg.seconds, cfg.profile_rate_hz) as raw:
                s = show(await point(cfg, proc, texts(), name, concurrency=c))
            if bench is not None and raw.is_file():
                per_thread = spy.components(raw.read_text(encoding="utf-8").splitlines())
                threads = {t: dict(n) for t, n in per_thread.items()}
                bench.profiles[name] = {"requests": s.ok, "rate_hz": cfg.profile_rate_hz,
                                        "threads": threads}  # fmt: skip
        else:
            s = show(await point(cfg, proc, texts(), name, concurrency=c))
        out.append(s)
    return out


async def prime_cache(cfg: Config, proc: PredictorProcess, redis: RedisServer,
                      pool: TextPool) -> None:  # fmt: skip
    """Send every hot-set text once, then wait until write-behind has put them all in Redis."""
    texts = pool.texts[: cfg.hot_size]
    await point(cfg, proc, iter(texts), "prime", 120, max_requests=len(texts), concurrency=16)
    client = redis.client()
    await asyncio.to_thread(poll, lambda: client.dbsize() >= len(set(texts)), 60.0,
                            "write-behind of the primed hot set")  # fmt: skip


def _unique(pool: TextPool) -> Callable[[], Iterator[str]]:
    return lambda: unique_texts(pool)


async def run_precision(cfg: Config, pools: Pools, bench: Bench, precision: str) -> None:
    """Steps (2) and (3) at one precision, the predictor told it by PREDICTOR_PRECISION;
    one server per step, every workload through it."""
    env = {"PREDICTOR_PRECISION": precision}
    name = f"predictor {precision}"
    top = max(cfg.concurrency)
    print(f"(2) {name}, dynamic batching, cache off, unique texts", flush=True)
    with serving(cfg, "predictor", name, {**env, "PREDICTOR_CACHE_ENABLED": "false"}) as p:
        for w, pool in pools.items():
            steps = bench.steps.setdefault(w, {})
            steps[name] = await run_points(cfg, p, f"{w} {name}", _unique(pool), cfg.concurrency,
                                           bench)  # fmt: skip
            best = bench.point(w, name, top)
            if best is not None and best.texts_per_s > 0:
                rate = round(0.7 * best.requests_per_s, 1)
                label = f"{w} {name} open {rate:g}/s"
                steps[f"{name} open-loop"] = [show(await point(cfg, p, _unique(pool)(), label,
                                                               rate=rate))]  # fmt: skip

    name = f"per-request {precision}"
    print(f"(3) {name}: usual KServe pattern, one forward per request, c={top}", flush=True)
    with serving(cfg, "loadtest.baselines.per_request", name, env) as p:
        for w, pool in pools.items():
            bench.steps[w][name] = await run_points(cfg, p, f"{w} {name}", _unique(pool), (top,))


async def run_shared(cfg: Config, pool: TextPool, bench: Bench) -> None:
    """Steps (4) and (5): the cache-hit path and its floor, at the predictor's own choice."""

    def hot() -> Iterator[str]:
        return hot_set(pool, cfg.hot_size, seed=1)

    steps = bench.steps.setdefault(HOT, {})
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
                steps["redis-hit"] = await run_points(cfg, p, "redis-hit", hot,
                                                      cfg.hit_concurrency)  # fmt: skip
            if not (redis.server and redis.server.running()):
                bench.notes.append(
                    "step (4): redis-server exited during the run (something outside the "
                    "benchmark stopped it); its figures are the fallback path, not the hit path"
                )
        finally:
            redis.stop()

    print("(5) no-op model on the predictor's server (framework floor)", flush=True)
    with serving(cfg, "loadtest.baselines.noop", "noop", {"PREDICTOR_CACHE_ENABLED": "false"}) as p:
        steps["noop"] = await run_points(cfg, p, "noop", hot, cfg.hit_concurrency)


async def run_hf_eager(cfg: Config, pools: Pools, bench: Bench) -> None:
    """Step (3b): KServe's huggingfaceserver pattern on the same weights (fp32)."""
    print("(3b) huggingfaceserver pattern: transformers forward, one per request", flush=True)
    with serving(cfg, "loadtest.baselines.hf_eager", HF_EAGER_STEP, {}) as p:
        for w, pool in pools.items():
            bench.steps[w][HF_EAGER_STEP] = await run_points(
                cfg, p, f"{w} {HF_EAGER_STEP}", _unique(pool), cfg.concurrency
            )


def hf_eager_unavailable(model_dir: Path) -> str | None:
    """Why the huggingfaceserver pattern cannot rebuild this model, or None."""
    if importlib.util.find_spec("transformers") is None:
        return "transformers is not installed (requirements-train.txt)"
    if source_encoder(ServingCard.read(model_dir)) is None:
        return "the encoder the model card names is not on this machine"
    return None


async def run_servers(cfg: Config, pools: Pools, bench: Bench, precisions: list[str],
                      hot_pool: TextPool) -> None:  # fmt: skip
    for precision in precisions:
        await run_precision(cfg, pools, bench, precision)
    if cfg.hf_eager and not hf_eager_unavailable(cfg.model_dir):
        await run_hf_eager(cfg, pools, bench)
    await run_shared(cfg, hot_pool, bench)


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


def environment(cfg: Config, pools: Pools) -> dict[str, Any]:
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
        **{f"texts ({w})": pool.source for w, pool in pools.items()},
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
    p.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(d.workloads),
                   help="text pools every step runs on")  # fmt: skip
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy each predictor point: flame graph, raw stacks, component table",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for every server (e.g. OMP_WAIT_POLICY=PASSIVE)",
    )
    p.add_argument("--no-hf-eager", action="store_true", help="leave out steps (1b) and (3b)")
    p.add_argument("--quick", action="store_true", help="short points, for a smoke run")
    a = p.parse_args(argv)  # fmt: skip
    model_dir = a.model_dir or (REPO / "models" / "sentiment")
    if a.model_dir is None and not (model_dir / "model.pt").is_file():
        print(f"{model_dir} not built (make model); using {TINY_MODEL}", file=sys.stderr)
        model_dir = TINY_MODEL
    if a.quick:
        a.seconds, a.ceiling_seconds, a.warmup_seconds = 3.0, 0.5, 1.0
    return Config(
        model_dir=model_dir.resolve(), out=a.out, threads=a.threads, seconds=a.seconds,
        concurrency=tuple(a.concurrency), hit_concurrency=tuple(a.hit_concurrency),
        hot_size=a.hot_size, batch_sizes=tuple(a.batch_sizes),
        ceiling_seconds=a.ceiling_seconds, warmup_seconds=a.warmup_seconds, wire=a.wire,
        precisions=tuple(a.precisions), workloads=tuple(dict.fromkeys(a.workloads)),
        profile=a.profile, server_env=dict(kv.split("=", 1) for kv in a.env),
        hf_eager=not a.no_hf_eager,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    cfg.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    pools = load_workloads(cfg.model_dir, cfg.workloads)
    hot_pool = load_workloads(cfg.model_dir, ("held-out",))["held-out"]
    precisions, notes = available_precisions(cfg)
    if cfg.profile and spy.py_spy() is None:
        notes.append("--profile: py-spy is not installed, no profiles recorded")
    config = {**asdict(cfg), "precisions": precisions}
    bench = Bench(config=config, environment=environment(cfg, pools), notes=notes)
    bench.agreement = card_agreement(cfg.model_dir)
    print(f"model {cfg.model_dir}; workloads {list(pools)}; precisions {precisions}", flush=True)
    for precision in precisions:
        print(
            f"(1) {precision} ceiling: TorchScript in-process, as exported and frozen", flush=True
        )
        for w, points in measure_ceiling(cfg, pools, precision, bench.notes).items():
            bench.ceiling.setdefault(w, {})[precision] = points
    why = hf_eager_unavailable(cfg.model_dir) if cfg.hf_eager else None
    if why:
        bench.notes.append(f"steps (1b) and (3b) skipped: {why}")
    elif cfg.hf_eager:
        print("(1b) huggingfaceserver pattern in-process, batch 1", flush=True)
        bench.hf_batch1_ms = measure_hf_batch1(cfg, pools)
    asyncio.run(run_servers(cfg, pools, bench, precisions, hot_pool))
    bench.environment["wall time"] = f"{(time.monotonic() - started) / 60:.1f} min"
    command = " ".join(["python -m loadtest.bench", *(argv if argv is not None else sys.argv[1:])])
    report = write_report(bench, cfg.out, command)
    for w, steps in bench.steps.items():
        print(f"\n{w}\n{summary_table([s for points in steps.values() for s in points])}")
    print()
    print(ratio_table(ratios(bench)))
    if bench.profiles:
        print(f"\nprofiles: {len(bench.profiles)} points, tables in {cfg.out / 'profiles.md'}")
    for n in bench.notes:
        print(f"note: {n}")
    print(f"\nreport: {report} ({bench.environment['wall time']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
