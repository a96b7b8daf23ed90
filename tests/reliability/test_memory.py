"""Memory with the cache full stays under the chart's limit (issue 10, item 11).

The arithmetic, as the README states it: RSS = process base (torch, tokenizer,
server; measured here) + model weights (the packaged encoder's files) + entries
x bytes per entry (measured here, by filling a real predictor's cache), and it
must fit `resources.limits.memory` of the chart's predictor container.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

import httpx
import pytest

from predictor.featurestore import keys
from predictor.featurestore.memory import MemoryBackend
from predictor.featurestore.predictions import encode_prediction
from predictor.featurestore.settings import FeatureStoreSettings
from predictor.prediction import Prediction
from tests.fixtures.predictor_proc import PredictorProcess
from tests.reliability.chart_numbers import predictor_numbers
from tests.reliability.load import rss_bytes

PREDICT = "/v1/models/sentiment:predict"


def test_memory_backend_keeps_each_value_at_its_own_size() -> None:
    """orjson's bytes keep its 4 KiB write buffer; the backend must not hold on to it."""
    p = Prediction("positive", 0.9, {"negative": 0.05, "neutral": 0.05, "positive": 0.9}, False)
    backend = MemoryBackend(100_000)
    n = 5000
    tracemalloc.start()
    try:
        for start in range(0, n, 500):
            items = {
                keys.prediction_key("sentiment", "v1", "fp32", f"text {i}"): encode_prediction(p)
                for i in range(start, start + 500)
            }
            asyncio.run(backend.set_many(items, 3600))
        per_entry = tracemalloc.get_traced_memory()[0] / n
    finally:
        tracemalloc.stop()
    assert per_entry < 1024, f"{per_entry:.0f} bytes per cached prediction"


def encoder_weight_bytes() -> int:
    """Bytes of the packaged encoder's weight files: what the real model adds to the tiny one."""
    from training.encoder import packaged_encoder_dir

    files = [f for f in packaged_encoder_dir().rglob("*") if f.suffix in (".safetensors", ".bin")]
    assert files, "no weight files in the packaged encoder"
    return sum(f.stat().st_size for f in files)


def fill(server: PredictorProcess, start: int, count: int) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for first in range(start, start + count, 256):
            texts = [
                f"distinct tweet {i}: some words so it looks like one #{i * 7919}"
                for i in range(first, min(first + 256, start + count))
            ]
            resp = client.post(PREDICT, json={"instances": texts})
            assert resp.status_code == 200, resp.text


def test_rss_with_the_default_cache_full_fits_the_chart_limit(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    cap = 4096  # a small cache, filled and then overrun, measures bytes per entry
    server = PredictorProcess(
        tiny_model_dir,
        tmp_path / "log",
        env={"PREDICTOR_MEMORY_MAX_ENTRIES": str(cap), "PREDICTOR_ACCESS_LOG": "false"},
    ).start().wait_ready()  # fmt: skip
    try:
        assert server.pid is not None
        fill(server, 0, 512)  # allocator and tokenizer warm, then the real baseline
        fill(server, 10_000_000, 512)
        base = rss_bytes(server.pid)
        fill(server, 1_000_000, cap)
        full = rss_bytes(server.pid)
        fill(server, 2_000_000, cap)  # as many again: the LRU evicts, memory stays
        overrun = rss_bytes(server.pid)
    finally:
        server.stop()
    per_entry = max(full - base, 0) / cap
    assert overrun - full < max(full - base, 8 << 20), "the cache grew past its entry cap"
    defaults = FeatureStoreSettings()
    entries = defaults.memory_max_entries + defaults.near_cache_entries  # both, worst case
    projected = base + encoder_weight_bytes() + entries * per_entry
    limit = predictor_numbers().memory_limit_bytes
    print(
        f"base {base / 2**20:.0f} MiB, {per_entry:.0f} B/entry, {entries} entries: "
        f"projected {projected / 2**20:.0f} MiB of {limit / 2**20:.0f} MiB"
    )
    assert projected < 0.8 * limit, f"projected RSS {projected / 2**20:.0f} MiB"
    assert per_entry < 2048, f"{per_entry:.0f} bytes per cached prediction"


@pytest.mark.reliability
def test_rss_with_the_default_cache_really_full(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The long version: fill the default 100,000 entries for real."""
    from tests.reliability.report import record

    server = PredictorProcess(
        tiny_model_dir, tmp_path / "log", env={"PREDICTOR_ACCESS_LOG": "false"}
    ).start().wait_ready()  # fmt: skip
    try:
        assert server.pid is not None
        fill(server, 0, 1024)
        base = rss_bytes(server.pid)
        entries = FeatureStoreSettings().memory_max_entries
        fill(server, 1_000_000, entries)
        full = rss_bytes(server.pid)
        assert server.proc is not None and server.proc.poll() is None
    finally:
        server.stop()
    limit = predictor_numbers().memory_limit_bytes
    record(
        "memory: default cache full",
        "fill",
        requests=entries // 256,
        server_errors=0,
        crashes=0,
        rss_growth_mb=(full - base) / 2**20,
    )
    assert full + encoder_weight_bytes() < 0.8 * limit
