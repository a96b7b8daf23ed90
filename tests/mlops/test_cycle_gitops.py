"""`mlops.cycle --git-repo`: the step is committed to a real Git remote a GitOps controller would
sync, with the evidence in the message; nothing is pushed on HOLD or --dry-run.

Real predictors (stable, and a canary serving the same weights as `twin-1`), a real
Prometheus scraping both, and a bare repository on disk as the remote. The feedback gate is
shown on the way: labels on the canary alone hold; labels on both sides let it decide.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops import cycle
from tests.fixtures import tokens
from tests.fixtures.predictor_proc import PredictorProcess
from tests.fixtures.prometheus_server import PROMETHEUS_BIN, PrometheusServer
from tests.mlops.conftest import card, v1
from tests.mlops.git_remote import bare_repo, git, log, show
from tests.mlops.test_cycle import LABELS, answers, feedback, wait_counted

VALUES = "envs/prod/sentiment-mlops.yaml"
RELEASE = {"model": {"storageUri": "s3://models/sentiment/stable/"}}
CANARY_URI = "s3://models/sentiment/twin-1/"


@dataclass
class Pair:
    root: Path
    stable_dir: Path
    stable: PredictorProcess
    canary: PredictorProcess
    prometheus: PrometheusServer


@pytest.fixture(scope="module")
def pair(
    stable_dir: Path, twin_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    if PROMETHEUS_BIN is None:
        pytest.skip("needs prometheus (.ci/run installs it)")
    root = tmp_path_factory.mktemp("cycle-gitops")
    env = tokens.env(root / "tokens")
    stable = PredictorProcess(stable_dir, root / "stable.log", env=env)
    canary = PredictorProcess(twin_dir, root / "canary.log", env=env)
    (root / "prom").mkdir()
    prom = PrometheusServer(root / "prom", [f"127.0.0.1:{s.http_port}" for s in (stable, canary)])
    try:
        stable.start()
        canary.start()
        stable.wait_ready()
        canary.wait_ready()
        prom.start().wait_ready().wait_scraping()
        for s in (stable, canary):  # the series exist before the window counts
            assert v1(s, ["first"]).status_code == 200
        prom.wait_scrapes(2)
        for i in range(60):
            for s in (stable, canary):
                assert v1(s, [f"live tweet {i} about the weather"]).status_code == 200
        wait_counted(prom, 'sum(predictor_requests_total{version="twin-1"})', 60)
        yield Pair(root, stable_dir, stable, canary, prom)
    finally:
        stable.stop()
        canary.stop()
        prom.stop()


def argv(p: Pair, state: Path, remote: Path, *extra: str) -> list[str]:
    return [
        "--stable", str(p.stable_dir), "--state", str(state),
        "--values-out", str(state.parent / "step.yaml"), "--work", str(state.parent / "work"),
        "--prometheus", p.prometheus.url, "--canary-window", "10m", "--window", "10m",
        "--min-requests", "40", "--min-canary-feedback", "10", "--min-stable-feedback", "10",
        "--p99-slack-ms", "1000", "--publish-to", "s3://unused/sentiment",
        "--git-repo", str(remote), "--git-path", VALUES, *extra,
    ]  # fmt: skip


def run(args: list[str]) -> tuple[cycle.Decision, str]:
    lines: list[str] = []
    d = cycle.run(cycle.parse_args(args), lines.append)
    out = "\n".join(lines)
    print(out)
    return d, out


def label_feedback(server: PredictorProcess, n: int) -> None:
    """`n` labels on `server`, the served answer for half of them, another label otherwise."""
    texts = [f"what do you think of tweet {i}" for i in range(n)]
    for i, (text, served) in enumerate(zip(texts, answers(server, texts), strict=True)):
        feedback(server, text, served if i % 2 else next(lb for lb in LABELS if lb != served))


def test_the_feedback_gate_holds_on_one_side_and_the_step_lands_in_git(
    pair: Pair, tmp_path: Path
) -> None:
    remote = bare_repo(tmp_path, {VALUES: RELEASE})
    stable_version = str(card(pair.stable_dir)["version"])
    state = tmp_path / "cycle" / "state.yaml"
    st = cycle.State(stable_version, str(pair.stable_dir), RELEASE["model"]["storageUri"],
                     candidate=cycle.Candidate("twin-1", str(pair.canary.model_dir),
                                               CANARY_URI, 10))  # fmt: skip
    state.parent.mkdir()
    state.write_text(yaml.safe_dump(cycle.configmap("c", st, None)))
    before = state.read_text()

    # labels on the canary only: its count alone must not pass the gate
    label_feedback(pair.canary, 12)
    wait_counted(pair.prometheus, 'sum(predictor_feedback_total{version="twin-1"})', 12)
    d, out = run(argv(pair, state, remote))
    assert d.action == "hold", out
    assert "[FAIL -> hold] feedback accuracy" in out and "0 labels on stable" in out, out
    assert len(log(remote)) == 1 and state.read_text() == before  # nothing pushed or written

    # stable gets its own labels: now the gate compares the two and the canary steps up
    label_feedback(pair.stable, 12)
    wait_counted(pair.prometheus, f'sum(predictor_feedback_total{{version="{stable_version}"}})',
                 12)  # fmt: skip
    d, out = run(argv(pair, state, remote))
    assert d.action == "step", out
    assert "[pass] feedback accuracy: feedback agrees with canary" in out, out
    head = git("rev-parse", "main", cwd=remote).strip()
    assert f"committed {head[:12]} to main of {remote}" in out
    message = log(remote)[0]
    assert message.startswith("sentiment: canary twin-1 to 50%\n\n"), message
    for expected in ("[pass] feedback accuracy", "[pass] p99 latency", "held-out accuracy",
                     f"Mlops-Stable-Version: {stable_version}", "Mlops-Candidate-Version: twin-1",
                     f"Mlops-Candidate-Uri: {CANARY_URI}", "Mlops-Decision: step"):  # fmt: skip
        assert expected in message, (expected, message)
    values: Any = show(remote, "main", VALUES)
    assert values == {**RELEASE, "canary": {"enabled": True, "trafficPercent": 50,
                                            "storageUri": CANARY_URI}}  # fmt: skip
    doc = yaml.safe_load(state.read_text())
    assert doc["metadata"]["name"] == "sentiment-mlops-cycle"  # named after the card's model
    recorded = yaml.safe_load(doc["data"]["state.yaml"])
    assert recorded["candidate"]["percent"] == 50
    assert recorded["last_decision"]["commit"] == head

    # right after the step there is no evidence of it: hold, and nothing more is pushed
    d, out = run(argv(pair, state, remote))
    assert d.action == "hold" and len(log(remote)) == 2, out


def test_dry_run_pushes_nothing(pair: Pair, tmp_path: Path) -> None:
    remote = bare_repo(tmp_path, {VALUES: RELEASE})
    state = tmp_path / "cycle" / "state.yaml"
    d, out = run([*argv(pair, state, remote), "--force", "--dry-run"])
    assert d.action == "would-retrain", out
    assert len(log(remote)) == 1 and not state.exists()


def test_a_push_that_fails_records_nothing(pair: Pair, tmp_path: Path) -> None:
    """The remote refuses (a hook): exit 1, the state as it was, so the next run retries."""
    remote = bare_repo(tmp_path, {VALUES: RELEASE})
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'branch is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    stable_version = str(card(pair.stable_dir)["version"])
    state = tmp_path / "cycle" / "state.yaml"
    st = cycle.State(stable_version, str(pair.stable_dir),
                     candidate=cycle.Candidate("twin-1", str(pair.canary.model_dir),
                                               CANARY_URI, 10))  # fmt: skip
    state.parent.mkdir()
    state.write_text(yaml.safe_dump(cycle.configmap("c", st, None)))
    before = state.read_text()
    label_feedback(pair.stable, 12)  # both sides labelled (the first test may not have run)
    label_feedback(pair.canary, 12)
    wait_counted(pair.prometheus, 'sum(predictor_feedback_total{version="twin-1"})', 12)
    with pytest.raises(cycle.CycleError, match="branch is protected"):
        run(argv(pair, state, remote))
    assert state.read_text() == before and len(log(remote)) == 1
    assert cycle.main(argv(pair, state, remote)) == cycle.FAILED
