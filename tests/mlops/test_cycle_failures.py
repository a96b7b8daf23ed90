"""`mlops.cycle` when things go wrong: a refused candidate, a failed or killed retrain.

In every case the stable version stays, nothing is published, and a retrain on
evidence already tried is not repeated. Real predictor, Redis and Prometheus;
the killed retrain is a real `python -m mlops.cycle` process sent SIGKILL.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops import cycle
from tests.fixtures import tokens
from tests.fixtures.predictor_proc import REPO, PredictorProcess
from tests.fixtures.prometheus_server import PROMETHEUS_BIN, PrometheusServer
from tests.fixtures.redis_server import REDIS_BIN, RedisServer
from tests.mlops.conftest import card
from tests.mlops.test_cycle import LABELS, Loop, answers, feedback, wait_counted


@pytest.fixture(scope="module")
def loop(stable_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    """A stable predictor whose feedback says it is wrong (accuracy 0 of 25)."""
    if PROMETHEUS_BIN is None or not Path(REDIS_BIN).exists():
        pytest.skip("needs prometheus and redis-server (.ci/run installs both)")
    root = tmp_path_factory.mktemp("cycle-failures")
    (root / "redis").mkdir()
    (root / "prom").mkdir()
    redis = RedisServer(root / "redis").start()
    env = {"PREDICTOR_REDIS_URL": redis.url(), **tokens.env(root / "tokens")}
    stable = PredictorProcess(stable_dir, root / "stable.log", env=env)
    prom = PrometheusServer(root / "prom", [f"127.0.0.1:{stable.http_port}"])
    try:
        stable.start().wait_ready()
        prom.start().wait_ready().wait_scraping()
        texts = [f"new tweet number {n} about the match" for n in range(25)]
        for text, served in zip(texts, answers(stable, texts), strict=True):
            feedback(stable, text, next(lb for lb in LABELS if lb != served))
        version = card(stable_dir)["version"]
        wait_counted(prom, f'sum(predictor_feedback_total{{version="{version}"}})', 25)
        yield Loop(root, stable_dir, redis, stable, prom, 0)
    finally:
        stable.stop()
        prom.stop()
        redis.stop()


def published(lp: Loop) -> list[Path]:
    return sorted(lp.pvc.rglob("model.pt")) if lp.pvc.exists() else []


def test_a_refused_candidate_is_not_published_and_not_retried(loop: Loop) -> None:
    stable_version = str(card(loop.stable_dir)["version"])
    code, out = loop.run("--max-f1-drop", "-1")  # no candidate can gain a full point of F1
    assert code == cycle.DECIDED and "decision: REFUSED" in out, out
    assert "[FAIL -> rollback] macro-F1" in out and "not published" in out, out
    assert published(loop) == [] and not loop.step.exists()
    st = loop.cycle_state()
    assert st["stable_version"] == stable_version and st["candidate"] is None
    assert st["last_evidence"]["stable_version"] == stable_version
    before = loop.state.read_text()

    code, out = loop.run("--max-f1-drop", "-1")
    assert "decision: NOTHING" in out and "already retrained on this feedback" in out, out
    assert loop.state.read_text() == before


def test_a_failed_retrain_changes_nothing(loop: Loop) -> None:
    before = loop.state.read_text() if loop.state.exists() else None
    argv = [*loop.argv("--force"), "--encoder", str(loop.root / "no-such-encoder")]
    assert cycle.main(argv) == cycle.FAILED
    assert published(loop) == []
    assert (loop.state.read_text() if loop.state.exists() else None) == before


def test_a_retrain_killed_midway_leaves_nothing_published(loop: Loop) -> None:
    before = loop.state.read_text() if loop.state.exists() else None
    log = (loop.root / "killed.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlops.cycle", *loop.argv("--force")],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    try:  # killed once training.build has started on the feedback rows, before its export
        while "extra training rows" not in (loop.root / "killed.log").read_text():
            assert proc.poll() is None, (loop.root / "killed.log").read_text()
            assert time.monotonic() < deadline, "the retrain never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert published(loop) == [] and not loop.step.exists()
    assert (loop.state.read_text() if loop.state.exists() else None) == before

    # the next run is not confused by the debris: it builds, gates and publishes
    code, out = loop.run("--force")
    assert code == cycle.DECIDED
    assert "decision: CANARY" in out, out
    assert len(published(loop)) == 1
