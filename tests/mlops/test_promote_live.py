"""Live canary rules against a real Prometheus scraping real predictors, one per version.

Stable and three canaries serve the same weights under their own versions: a
healthy one, one slowed by a 100 ms batch delay, and one that sheds 3-text
requests with 503 (queue cap 2). Traffic is interleaved so any CPU contention
on the shared machine hits every version alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mlops import promote
from tests.fixtures.predictor_proc import PredictorProcess
from tests.fixtures.prometheus_server import PROMETHEUS_BIN, PrometheusServer
from tests.mlops.conftest import v1, with_card

ROUNDS = 120
CANARIES = {
    "healthy": {},
    "slow": {"PREDICTOR_MAX_BATCH_DELAY_MS": "100", "PREDICTOR_MAX_BATCH_SIZE": "8"},
    "shedding": {"PREDICTOR_MAX_QUEUE_TEXTS": "2"},
}


@dataclass
class Fleet:
    stable: Path
    canaries: dict[str, Path]
    prometheus: PrometheusServer


@pytest.fixture(scope="module")
def fleet(stable_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    if PROMETHEUS_BIN is None:
        pytest.skip("prometheus not installed (apt-get install prometheus)")
    root = tmp_path_factory.mktemp("fleet")
    dirs = {n: with_card(stable_dir, root / n, version=f"{n}-1") for n in CANARIES}
    servers = {"stable": PredictorProcess(stable_dir, root / "stable.log")}
    servers |= {n: PredictorProcess(d, root / f"{n}.log", env=CANARIES[n]) for n, d in dirs.items()}
    (root / "prom").mkdir()
    prom = PrometheusServer(root / "prom", [f"127.0.0.1:{s.http_port}" for s in servers.values()])
    try:
        for s in servers.values():
            s.start()
        for s in servers.values():
            s.wait_ready()
        prom.start().wait_ready().wait_scraping()
        for s in servers.values():  # create every series before the window starts counting
            v1(s, ["first"])
            assert v1(s, ["a", "b", "c"]).status_code in (200, 503)
        prom.wait_scrapes(2)
        for i in range(ROUNDS):
            for name, s in servers.items():
                texts = (
                    [f"live {i}", f"more {i}", f"and {i}"]
                    if name == "shedding" and i % 2
                    else [f"live {i}"]
                )
                assert v1(s, texts).status_code == (503 if len(texts) == 3 else 200)
        prom.wait_scrapes(2)
        yield Fleet(stable_dir, dirs, prom)
    finally:
        for s in servers.values():
            s.stop()
        prom.stop()


def _promote(fleet: Fleet, name: str, tmp_path: Path, *extra: str) -> tuple[int, str, object]:
    current = tmp_path / "current.yaml"
    current.write_text("canary: {enabled: true, trafficPercent: 10}\n")
    out = tmp_path / "step.yaml"
    argv = ["--stable", str(fleet.stable), "--candidate", str(fleet.canaries[name]),
            "--current-values", str(current), "--out", str(out), "--eval-size", "100",
            "--prometheus", fleet.prometheus.url, "--window", "2m",
            "--p99-tolerance", "1.0", "--p99-slack-ms", "25", *extra]  # fmt: skip
    code = promote.main(argv)
    return code, out.read_text(), yaml.safe_load(out.read_text())


def test_a_healthy_canary_goes_to_the_next_step(fleet: Fleet, tmp_path: Path) -> None:
    code, text, values = _promote(fleet, "healthy", tmp_path)
    assert code == 0, text
    assert "[pass] error ratio: 5xx: canary 0.00% vs stable 0.00%" in text
    assert "[pass] p99 latency" in text
    assert values == {"canary": {"enabled": True, "trafficPercent": 50}}


def test_a_slow_canary_is_rolled_back(fleet: Fleet, tmp_path: Path) -> None:
    code, text, values = _promote(fleet, "slow", tmp_path)
    assert code == 4, text
    assert "[FAIL -> rollback] p99 latency" in text and "[pass] error ratio" in text
    assert values == {"canary": {"enabled": True, "trafficPercent": 0}}


def test_a_canary_answering_5xx_is_rolled_back(fleet: Fleet, tmp_path: Path) -> None:
    code, text, _ = _promote(fleet, "shedding", tmp_path)
    assert code == 4, text
    assert "[FAIL -> rollback] error ratio" in text


def test_too_little_canary_traffic_holds(fleet: Fleet, tmp_path: Path) -> None:
    code, text, values = _promote(fleet, "healthy", tmp_path, "--min-requests", "100000")
    assert code == 3, text
    assert "[FAIL -> hold] canary traffic" in text
    assert values == {"canary": {"enabled": True, "trafficPercent": 10}}
