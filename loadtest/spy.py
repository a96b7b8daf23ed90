"""Where each millisecond goes: py-spy over a server for one point, summed by component.

`python -m loadtest.bench --profile` records every predictor point twice at once
(py-spy attaches without stopping the process, `--nonblocking`): a flame graph
(SVG) for reading, and py-spy's raw collapsed stacks (one line per distinct
stack: `thread (tid): name;frame;...;frame count`) for machines, from which
`components` makes a short table per thread: each sample goes to the innermost
frame that belongs to a named component (torch forward, tokenizer, engine,
batcher, ...), so a metric called from the edge counts as metrics, not edge.
Only Python threads are sampled: torch's intra-op OpenMP workers and native
idle time are not in the table, and idle samples are left out (py-spy's
default), so shares are of the time a thread ran Python or the C it called;
`executor` is the hand-off between the loop and the engine thread (submitting,
and the worker waiting on its queue, which py-spy with --nonblocking cannot
always tell from running).

`python -m loadtest.spy FILE.txt...` prints the tables of recorded raw files.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

# (component, pattern on "function (file:line)"), innermost match wins; file paths are full
# (py-spy --full-filenames). Order matters only within a frame: the first pattern that fits.
COMPONENTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("tokenizer", r"predictor/tokenization\.py|/tokenizers/|/transformers/tokenization"),
        ("torch forward", r"/torch/|/transformers/|(^|\.)infer \(.*predictor/engine\.py"),
        ("engine", r"predictor/engine\.py"),
        ("batcher", r"predictor/batching\.py"),
        ("model.predict", r"predictor/model\.py"),
        ("protocol", r"predictor/protocol\.py|predictor/serving/binary_v2\.py"),
        ("featurestore", r"predictor/featurestore/|/redis/"),
        ("metrics", r"predictor/metrics\.py|/prometheus_client/"),
        ("edge", r"predictor/serving/edge\.py"),
        ("http_guard", r"predictor/serving/http_guard\.py"),
        ("logging", r"/logging/|predictor/serving/logs\.py|/pythonjsonlogger/"),
        ("KServe", r"/kserve/|predictor/serving/kserve_compat\.py"),
        ("FastAPI/Starlette", r"/fastapi/|/starlette/|/pydantic"),
        ("uvicorn/httptools", r"/uvicorn/|/httptools/|/h11/|uvicorn_compat\.py"),
        ("asyncio", r"/asyncio/|/uvloop/"),
        ("executor", r"/concurrent/futures/|/threading\.py"),  # loop <-> engine hand-off, waits
    )
)
OTHER = "other"
_LINE = re.compile(r"^thread \((?P<tid>[^)]*)\): (?P<stack>.*) (?P<count>\d+)$")


def component(frames: list[str]) -> str:
    """The component of the innermost frame that has one; `other` if none does."""
    for frame in reversed(frames):
        for name, pattern in COMPONENTS:
            if pattern.search(frame):
                return name
    return OTHER


def components(lines: Iterable[str]) -> dict[str, Counter[str]]:
    """Samples per component, per thread (named as py-spy names it, tid dropped so the
    engine thread of two runs compares)."""
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for line in lines:
        m = _LINE.match(line.strip())
        if not m:
            continue
        thread, *frames = m["stack"].split(";")
        out[thread][component(frames)] += int(m["count"])
    return dict(out)


def table(
    per_thread: dict[str, Counter[str]], rate_hz: int, requests: int | None = None
) -> list[list[str]]:
    """Rows of thread, component, samples, share of the thread's samples and, given the
    requests answered during the recording, milliseconds of that thread per request."""
    rows = []
    for thread, counts in sorted(per_thread.items(), key=lambda kv: -sum(kv[1].values())):
        total = sum(counts.values())
        for name, n in counts.most_common():
            per = f"{1000 * n / rate_hz / requests:.3f}" if requests else "-"
            rows.append([thread, name, str(n), f"{n / total:.1%}", per])
    return rows


TABLE_HEADER = ["thread", "component", "samples", "share of thread", "ms per request"]


def py_spy() -> str | None:
    """py-spy on PATH or beside this interpreter (the venv's bin)."""
    import shutil

    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


@contextmanager
def recording(pid: int, stem: Path, seconds: float, rate_hz: int = 100) -> Iterator[Path]:
    """py-spy for `seconds` over `pid`: `stem`.svg (flame graph) and `stem`.txt (raw)."""
    spy = py_spy()
    if spy is None:
        raise FileNotFoundError("py-spy is not installed (requirements-dev.txt)")
    base = [spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
            "--rate", str(rate_hz), "--threads", "--nonblocking"]  # fmt: skip
    raw = stem.with_suffix(".txt")
    procs = [
        subprocess.Popen([*base, "--output", str(stem.with_suffix(".svg"))],
                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT),
        subprocess.Popen([*base, "--format", "raw", "--full-filenames", "--output", str(raw)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT),
    ]  # fmt: skip
    try:
        yield raw
    finally:
        for proc in procs:
            try:
                proc.wait(seconds + 30)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv: list[str] | None = None) -> int:
    from loadtest.report import markdown_table

    for path in map(Path, argv if argv is not None else sys.argv[1:]):
        per_thread = components(path.read_text(encoding="utf-8").splitlines())
        print(f"## {path}\n\n{markdown_table(TABLE_HEADER, table(per_thread, 100))}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
