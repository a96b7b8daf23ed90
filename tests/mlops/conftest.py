"""Model directories for the MLOps tests: stable, an independently trained candidate, copies."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.inprocess import InProcessPredictor
from harness.servers import Predictor
from predictor.featurestore import keys
from tests.fixtures.redis_server import REDIS_BIN, RedisServer


def with_card(src: Path, dst: Path, **changes: object) -> Path:
    """A copy of a model directory whose card differs by `changes` (None deletes a field)."""
    shutil.copytree(src, dst)
    path = dst / "model_card.json"
    card = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            card.pop(key, None)
        else:
            card[key] = value
    path.write_text(json.dumps(card))
    return dst


def card(model_dir: Path) -> dict[str, object]:
    return dict(json.loads((model_dir / "model_card.json").read_text()))


def v1(server: Predictor, texts: list[str]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/models/sentiment:predict", json={"instances": texts}, timeout=30
    )


@pytest.fixture(scope="session")
def stable_dir(tiny_model_dir: Path) -> Path:
    """The shared tiny model (seed 0, 400 rows) plays the serving model."""
    return tiny_model_dir


@pytest.fixture(scope="session")
def candidate_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Retrained on another sample: other seed, more rows, so another split and weights."""
    from training.tiny import build_tiny_model_dir

    root = tmp_path_factory.mktemp("candidate")
    return build_tiny_model_dir(root, "bert", "--seed", "1", "--limit", "600")


@pytest.fixture(scope="session")
def twin_dir(stable_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stable weights under a new version: same answers, so every offline rule passes."""
    return with_card(stable_dir, tmp_path_factory.mktemp("twin") / "model", version="twin-1")


@dataclass
class StoreBacked:
    """A real predictor on the stable model writing to a real redis-server."""

    predictor: Predictor
    redis: RedisServer
    version: str

    def answer(self, texts: list[str], chunk: int = 32) -> list[dict[str, Any]]:
        """The predictor's v1 answers, in order."""
        out: list[dict[str, Any]] = []
        for start in range(0, len(texts), chunk):
            resp = v1(self.predictor, texts[start : start + chunk])
            assert resp.status_code == 200, resp.text
            out += resp.json()["predictions"]
        return out

    def stored(self) -> int:
        pattern = f"*{keys.prediction_prefix('sentiment', self.version)}*"  # the served name
        return sum(1 for _ in self.redis.client().scan_iter(match=pattern))

    def wait_stored(self, n: int, timeout: float = 15.0) -> None:
        """Until write-behind has put `n` predictions of this version into Redis."""
        deadline = time.monotonic() + timeout
        while self.stored() < n:
            assert time.monotonic() < deadline, f"only {self.stored()} of {n} stored"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def store_backed(
    stable_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoreBacked]:
    if not Path(REDIS_BIN).exists():
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    redis_server = RedisServer(tmp_path_factory.mktemp("mlops-redis")).start()
    log = tmp_path_factory.mktemp("mlops-predictor") / "predictor.log"
    server = InProcessPredictor(stable_dir, log, env={"PREDICTOR_REDIS_URL": redis_server.url()})
    try:
        server.start().wait_ready()
        yield StoreBacked(server, redis_server, str(card(stable_dir)["version"]))
    finally:
        server.stop()
        redis_server.stop()


@pytest.fixture
def fresh_store(store_backed: StoreBacked) -> StoreBacked:
    """The same predictor with an empty Redis: each test sees only its own traffic."""
    store_backed.redis.client().flushdb()
    return store_backed
