"""`make bench` / `python -m loadtest.bench`: the predictor against its ceiling and baselines.

One run, one machine, the same texts for every step, so the ratios hold even
where absolute numbers drift between (shared, noisy) machines:

1. ceiling: the TorchScript model in this process, tokenise + forward, at its
   best batch size (forward-only figures alongside);
2. the predictor, dynamic batching, cache off, unique texts, concurrency 1/16/64;
3. the usual KServe pattern (loadtest/baselines/per_request.py): one forward
   per request in `predict`, stock ModelServer, same model;
4. the predictor with the Redis feature store, Zipf hot set (cache-hit path);
5. a no-op model on the predictor's server (loadtest/baselines/noop.py): the floor.

Writes report.md, bench.json and PNGs under loadtest/results/ and prints the
ratios (2)/(1), (2)/(3), (4)/(5) against the targets in issue 6.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from harness.process import REPO
from harness.servers import REDIS_BIN, PredictorProcess, RedisServer
from loadtest.baselines.per_request import PerRequestModel
from loadtest.clients import Wire
from loadtest.corpus import TextPool, hot_set, load_pool, unique_texts
from loadtest.measure import measure
from loadtest.report import markdown_table, plot_latency_vs_throughput, summary_table, write_json
from loadtest.stats import Summary
from predictor.tokenization import encode

RESULTS = REPO / "loadtest" / "results"
TINY_MODEL = Path("/tmp/tinymodel")

# Targets from issue 6 (2-core CPU).
TARGET_VS_CEILING = 0.9
TARGET_VS_BASELINE = 2.0
TARGET_HIT_P99_MS = 5.0
TARGET_VS_FLOOR = 0.8


@dataclass
class Config:
    model_dir: Path
    out: Path
    threads: int
    seconds: float
    concurrency: tuple[int, ...]
    hit_concurrency: tuple[int, ...]
    hot_size: int
    batch_sizes: tuple[int, ...]
    ceiling_seconds: float
    warmup_seconds: float
    wire: Wire
    profile: bool
    server_env: dict[str, str] = field(default_factory=dict)
    max_requests: int = 1_000_000


@dataclass(frozen=True)
class CeilingPoint:
    batch_size: int
    texts_per_s: float  # tokenise + forward
    forward_texts_per_s: float  # forward pass alone
    batches: int


@dataclass
class Bench:
    """Everything one run measured; the JSON form is `asdict` of this."""

    config: dict[str, Any]
    environment: dict[str, Any]
    ceiling: list[CeilingPoint] = field(default_factory=list)
    steps: dict[str, list[Summary]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def best_ceiling(self) -> CeilingPoint:
        return max(self.ceiling, key=lambda p: p.texts_per_s)

    def point(self, step: str, concurrency: int) -> Summary | None:
        return next((s for s in self.steps.get(step, []) if s.concurrency == concurrency), None)


# --- (1) the ceiling --------------------------------------------------------------
def measure_ceiling(cfg: Config, pool: TextPool) -> list[CeilingPoint]:
    """Batches of unique texts through tokenizer + TorchScript, in this process."""
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    model = PerRequestModel("ceiling", cfg.model_dir)
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
        print(f"  ceiling batch {size:3d}: {points[-1].texts_per_s:8.1f} texts/s", flush=True)
    return points


def _forward(model: PerRequestModel, texts: list[str]) -> float:
    """Tokenise and run one batch; returns the seconds the forward pass alone took."""
    batch = encode(model.tokenizer, texts)
    t0 = time.perf_counter()
    with torch.inference_mode():
        torch.softmax(model.model(batch.input_ids, batch.attention_mask), dim=-1)
    return time.perf_counter() - t0


# --- servers ------------------------------------------------------------------
@contextmanager
def serving(cfg: Config, module: str, name: str, env: dict[str, str]) -> Iterator[PredictorProcess]:
    env = {"PREDICTOR_CPU_THREADS": str(cfg.threads), **cfg.server_env, **env}
    proc = PredictorProcess(cfg.model_dir, cfg.out / f"{name}.log", env=env, module=module)
    proc.start()
    try:
        yield proc.wait_ready(120)
    finally:
        proc.stop()


@contextmanager
def profiling(cfg: Config, proc: PredictorProcess, name: str, seconds: float) -> Iterator[None]:
    """py-spy over the server for the length of one point, when asked for and installed."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if not cfg.profile or spy is None or proc.pid is None:
        yield
        return
    out = cfg.out / f"profile-{name}.svg"
    cmd = [
        spy,
        "record",
        "--pid",
        str(proc.pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "200",
        "--output",
        str(out),
        "--threads",
        "--nonblocking",
    ]
    spy_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        spy_proc.wait(seconds + 30)


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
        with profiling(cfg, proc, f"{step}-c{c}", cfg.seconds) if c == profile_at else _nothing():
            out.append(show(await point(cfg, proc, texts(), f"{step} c={c}", concurrency=c)))
    return out


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def featurestore_missing() -> str | None:
    """Why step (4) cannot run in this checkout, or None when it can."""
    try:
        from predictor.featurestore.settings import FeatureStoreSettings
    except ImportError:
        return "predictor.featurestore is not in this checkout"
    if "redis_url" not in FeatureStoreSettings.model_fields:
        return "the feature store has no redis_url setting"
    if not Path(REDIS_BIN).exists():
        return "redis-server is not installed (apt-get install redis-server)"
    return None


async def prime_cache(cfg: Config, proc: PredictorProcess, pool: TextPool) -> None:
    """Send every hot-set text once, then give write-behind a moment to land in Redis."""
    texts = iter(pool.texts[: cfg.hot_size])
    await point(cfg, proc, texts, "prime", 120, max_requests=cfg.hot_size, concurrency=16)
    await asyncio.sleep(1.0)


async def run_servers(cfg: Config, pool: TextPool, bench: Bench) -> None:
    def unique() -> Iterator[str]:
        return unique_texts(pool)

    def hot() -> Iterator[str]:
        return hot_set(pool, cfg.hot_size, seed=1)

    print("(2) predictor, dynamic batching, cache off, unique texts", flush=True)
    with serving(cfg, "predictor", "predictor", {"PREDICTOR_CACHE_ENABLED": "false"}) as p:
        top = max(cfg.concurrency)
        bench.steps["predictor"] = await run_points(
            cfg, p, "predictor", unique, cfg.concurrency, profile_at=top
        )
        best = bench.point("predictor", top)
        if best is not None and best.texts_per_s > 0:
            rate = round(0.7 * best.requests_per_s, 1)
            s = show(await point(cfg, p, unique(), f"predictor open {rate:g}/s", rate=rate))
            bench.steps["predictor-open-loop"] = [s]

    print("(3) usual KServe pattern: one forward per request, stock ModelServer", flush=True)
    with serving(cfg, "loadtest.baselines.per_request", "per-request", {}) as p:
        bench.steps["per-request"] = await run_points(
            cfg, p, "per-request", unique, cfg.concurrency
        )

    print("(4) predictor + Redis feature store, Zipf hot set", flush=True)
    missing = featurestore_missing()
    if missing:
        bench.notes.append(f"step (4) skipped: {missing}")
        print(f"  skipped: {missing}", flush=True)
    else:
        redis = RedisServer(cfg.out).start()
        try:
            env = {"PREDICTOR_REDIS_URL": redis.url(), "PREDICTOR_CACHE_ENABLED": "true"}
            with serving(cfg, "predictor", "predictor-redis", env) as p:
                await prime_cache(cfg, p, pool)
                bench.steps["redis-hit"] = await run_points(
                    cfg, p, "redis-hit", hot, cfg.hit_concurrency, profile_at=cfg.hit_concurrency[0]
                )
            if redis.proc is None or redis.proc.poll() is not None:
                bench.notes.append(
                    "step (4): redis-server exited during the run (something outside the "
                    "benchmark stopped it); its figures are the fallback path, not the hit path"
                )
        finally:
            redis.stop()
        if all(s.cache_hit_ratio is None for s in bench.steps["redis-hit"]):
            bench.notes.append(
                "step (4): the predictor exposes no predictor_cache_lookups_total, so the cache "
                "hit ratio is unknown; the feature store may not be on the request path"
            )

    print("(5) no-op model on the predictor's server (framework floor)", flush=True)
    with serving(cfg, "loadtest.baselines.noop", "noop", {"PREDICTOR_CACHE_ENABLED": "false"}) as p:
        bench.steps["noop"] = await run_points(cfg, p, "noop", hot, cfg.hit_concurrency)


# --- verdicts and report -------------------------------------------------------
@dataclass(frozen=True)
class Ratio:
    name: str
    value: float | None
    target: str
    met: bool | None


def ratios(bench: Bench) -> list[Ratio]:
    top = max(bench.config["concurrency"])
    hit_c = bench.config["hit_concurrency"][0]
    ceiling = bench.best_ceiling().texts_per_s if bench.ceiling else None

    def tps(step: str, c: int) -> float | None:
        s = bench.point(step, c)
        return s.texts_per_s if s is not None else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    def verdict(name: str, value: float | None, target: float, cmp: str) -> Ratio:
        met = None if value is None else value >= target if cmp == ">=" else value <= target
        return Ratio(name, value, f"{cmp} {target:g}", met)

    hit = bench.point("redis-hit", hit_c)
    ours = tps("predictor", top)
    return [
        verdict(f"(2)/(1) predictor c={top} / ceiling, texts/s", ratio(ours, ceiling),
                TARGET_VS_CEILING, ">="),
        verdict(f"(2)/(3) predictor / per-request baseline, c={top}, texts/s",
                ratio(ours, tps("per-request", top)), TARGET_VS_BASELINE, ">="),
        verdict(f"(4)/(5) Redis hit path / no-op floor, c={hit_c}, texts/s",
                ratio(tps("redis-hit", hit_c), tps("noop", hit_c)), TARGET_VS_FLOOR, ">="),
        verdict(f"(4) hit path p99 at c={hit_c}, ms", hit.p99_ms if hit else None,
                TARGET_HIT_P99_MS, "<="),
    ]  # fmt: skip


def ratio_table(rs: list[Ratio]) -> str:
    def show(r: Ratio) -> list[str]:
        value = "n/a" if r.value is None else f"{r.value:.2f}"
        met = "n/a" if r.met is None else "met" if r.met else "MISSED"
        return [r.name, value, r.target, met]

    return markdown_table(["ratio", "value", "target", "verdict"], [show(r) for r in rs])


def ceiling_table(points: list[CeilingPoint]) -> str:
    rows = [
        [str(p.batch_size), f"{p.texts_per_s:.1f}", f"{p.forward_texts_per_s:.1f}", str(p.batches)]
        for p in points
    ]
    return markdown_table(
        ["batch", "texts/s (tokenise + forward)", "texts/s (forward)", "batches"], rows
    )


def plot_ceiling(points: list[CeilingPoint], path: Path) -> Path:
    fig = Figure(figsize=(6, 4), dpi=120)
    ax = fig.subplots()
    sizes = [p.batch_size for p in points]
    ax.plot(sizes, [p.texts_per_s for p in points], "o-", label="tokenise + forward")
    ax.plot(sizes, [p.forward_texts_per_s for p in points], "s--", label="forward only")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("texts/s")
    ax.set_title("(1) TorchScript in-process, by batch size")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return path


def write_report(bench: Bench, cfg: Config, command: str) -> Path:
    all_rows = [s for steps in bench.steps.values() for s in steps]
    series = {k: v for k, v in bench.steps.items() if k != "predictor-open-loop"}
    ceiling = bench.best_ceiling().texts_per_s if bench.ceiling else None
    plot_latency_vs_throughput(
        series,
        cfg.out / "latency_vs_throughput.png",
        ceiling=ceiling,
        title=f"{bench.environment['model']} on {bench.environment['cpu']}",
    )
    if bench.ceiling:
        plot_ceiling(bench.ceiling, cfg.out / "ceiling.png")
    env = "\n".join(f"- {k}: {v}" for k, v in bench.environment.items())
    notes = "\n".join(f"- {n}" for n in bench.notes) or "- none"
    text = f"""# Benchmark: predictor against its ceiling and baselines

Command: `{command}`

{env}

## Ratios (same run, same machine)

{ratio_table(ratios(bench))}

## (1) Ceiling: TorchScript in-process

{ceiling_table(bench.ceiling)}

## Servers (wire {cfg.wire}, {cfg.seconds:g} s per point, one text per request)

{summary_table(all_rows)}

Client CPU is the load generator's own CPU time during the point: it shares the
machine's cores with the server, so it is part of what limits the server here.

![latency against throughput](latency_vs_throughput.png)

![ceiling by batch size](ceiling.png)

## Notes

{notes}
"""
    path = cfg.out / "report.md"
    path.write_text(text, encoding="utf-8")
    write_json(
        cfg.out / "bench.json", {**asdict(bench), "ratios": [asdict(r) for r in ratios(bench)]}
    )
    return path


def environment(cfg: Config, pool: TextPool) -> dict[str, Any]:
    card = PerRequestModel("probe", cfg.model_dir)
    card.load()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit or "unknown",
        "model": f"{cfg.model_dir.name} ({cfg.model_dir})",
        "cpu": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}",
        "torch": torch.__version__,
        "torch threads": cfg.threads or os.cpu_count(),
        "texts": pool.source,
        "hot set": f"{cfg.hot_size} texts, Zipf exponent 1.1",
        "extra server environment": cfg.server_env or "none",
    }


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="default: models/sentiment, else the tiny model at /tmp/tinymodel",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 = one per core")
    p.add_argument("--seconds", type=float, default=15.0, help="length of each server point")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--hit-concurrency", type=int, nargs="+", default=[16, 64])
    p.add_argument("--hot-size", type=int, default=500)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16, 32, 64])
    p.add_argument("--ceiling-seconds", type=float, default=4.0)
    p.add_argument("--warmup-seconds", type=float, default=3.0)
    p.add_argument("--wire", type=Wire, choices=list(Wire), default=Wire.V1)
    p.add_argument("--profile", action="store_true", help="py-spy the predictor at top load")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for every server (e.g. OMP_WAIT_POLICY=PASSIVE)",
    )
    p.add_argument("--quick", action="store_true", help="short points, for a smoke run")
    a = p.parse_args(argv)
    model_dir = a.model_dir or (REPO / "models" / "sentiment")
    if a.model_dir is None and not (model_dir / "model.pt").is_file():
        print(f"{model_dir} not built (make model); using {TINY_MODEL}", file=sys.stderr)
        model_dir = TINY_MODEL
    if a.quick:
        a.seconds, a.ceiling_seconds, a.warmup_seconds = 3.0, 1.0, 1.0
    return Config(
        model_dir.resolve(),
        a.out,
        a.threads,
        a.seconds,
        tuple(a.concurrency),
        tuple(a.hit_concurrency),
        a.hot_size,
        tuple(a.batch_sizes),
        a.ceiling_seconds,
        a.warmup_seconds,
        a.wire,
        a.profile,
        dict(kv.split("=", 1) for kv in a.env),
    )


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    cfg.out.mkdir(parents=True, exist_ok=True)
    pool = load_pool(cfg.model_dir)
    bench = Bench(config=asdict(cfg), environment=environment(cfg, pool))
    print(f"model {cfg.model_dir}; texts: {pool.source}", flush=True)
    print("(1) ceiling: TorchScript in-process", flush=True)
    bench.ceiling = measure_ceiling(cfg, pool)
    asyncio.run(run_servers(cfg, pool, bench))
    command = " ".join(["python -m loadtest.bench", *(argv if argv is not None else sys.argv[1:])])
    report = write_report(bench, cfg, command)
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
