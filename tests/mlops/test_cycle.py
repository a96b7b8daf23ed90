"""`mlops.cycle` end to end on tiny models: real predictors, a real Redis, a real Prometheus.

The story: a stable predictor sees a shifted input stream (texts it answers with
its rarest label) and feedback that contradicts it; the cycle retrains on the
corpus plus that feedback, publishes the candidate to a pvc:// claim (a local
directory standing in for the mounted claim) and writes the first canary step.
A canary predictor then serves the published directory beside stable, both
scraped by Prometheus, and the next runs step it up to 100%, where it becomes
stable. A candidate trained on flipped labels is rolled back by the live
feedback gate instead.

Gate settings the tiny random-encoder models need are widened here and named.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mlops import cycle
from mlops.heldout import predict
from tests.charts import chart_tools as ct
from tests.charts.conftest import helm_bin, shared_crds
from tests.fixtures import tokens
from tests.fixtures.predictor_proc import PredictorProcess, free_port
from tests.fixtures.prometheus_server import PROMETHEUS_BIN, PrometheusServer
from tests.fixtures.redis_server import REDIS_BIN, RedisServer
from tests.mlops.conftest import card, v1
from tests.mlops.test_canary import chart_accepts
from training import data

__all__ = ["helm_bin", "shared_crds"]
LABELS = list(data.LABELS)


def assert_step_deploys(step: Path, uri: str) -> dict[str, Any]:
    """The cycle's step, layered over the chart's defaults, passes values.schema.json, and helm
    renders it into an InferenceService (valid against the CRD) serving `uri`: at 10/50 % as
    the Knative canary revision, at 100 % as the stable model with no canary left."""
    values = yaml.safe_load(step.read_text())
    chart_accepts(values)
    isvc = ct.one(ct.render([step]), "InferenceService")
    assert ct.validate_object(isvc) == []
    predictor = isvc["spec"]["predictor"]
    assert ct.env_of(ct.container(predictor, "kserve-container"))["STORAGE_URI"] == uri
    if values["canary"]["enabled"]:
        assert predictor["canaryTrafficPercent"] == values["canary"]["trafficPercent"]
    else:
        assert "canaryTrafficPercent" not in predictor
    return isvc


def tiny_build_args(stable_dir: Path) -> list[str]:
    """What training.tiny gives training.build for the stable model (same encoder, sizes)."""
    return ["--encoder", str(stable_dir.parent / "hf-bert"), "--limit", "400",
            "--max-seq-length", "32", "--epochs", "5", "--name", "sentiment",
            "--ood-limit", "300", "--train-layers", "0"]  # fmt: skip


@dataclass
class Loop:
    """A stable predictor, a slot for a canary, Prometheus scraping both, and the cycle's files."""

    root: Path
    stable_dir: Path
    redis: RedisServer
    stable: PredictorProcess
    prometheus: PrometheusServer
    canary_port: int
    canary: PredictorProcess | None = None
    outputs: list[str] = field(default_factory=list)

    @property
    def state(self) -> Path:
        return self.root / "state.yaml"

    @property
    def step(self) -> Path:
        return self.root / "step.yaml"

    @property
    def pvc(self) -> Path:
        return self.root / "pvc"

    def argv(self, *extra: str) -> list[str]:
        return [
            "--stable", str(self.stable_dir), "--state", str(self.state),
            "--values-out", str(self.step), "--work", str(self.root / "work"),
            "--prometheus", self.prometheus.url, "--feedback", self.redis.url(),
            "--publish-to", "pvc://models/sentiment", "--pvc-root", str(self.pvc),
            "--window", "10m", "--canary-window", "10m",
            "--min-count", "100", "--min-feedback", "20", "--min-requests", "40",
            "--min-canary-feedback", "10", "--eval-size", "300",
            # tiny random encoders: models disagree a lot and F1 is near chance, and the
            # shared CPU makes p99 noisy; the live feedback gate decides these tests
            "--min-agreement", "0", "--max-f1-drop", "0.3", "--p99-slack-ms", "1000",
            *extra, "--", *tiny_build_args(self.stable_dir),
        ]  # fmt: skip

    def run(self, *extra: str) -> tuple[int, str]:
        """One cycle run in-process; (exit code, what it printed)."""
        lines: list[str] = []
        args = cycle.parse_args(self.argv(*extra))
        try:
            cycle.run(args, lines.append)
            code = cycle.DECIDED
        except cycle.CycleError as exc:
            lines.append(f"error: {exc}")
            code = cycle.FAILED
        text = "\n".join(lines)
        self.outputs.append(text)
        print(text)
        return code, text

    def cycle_state(self) -> dict[str, Any]:
        doc = yaml.safe_load(self.state.read_text())
        assert doc["kind"] == "ConfigMap"
        return dict(yaml.safe_load(doc["data"]["state.yaml"]))

    def start_canary(self, model_dir: Path) -> PredictorProcess:
        if self.canary is not None:
            self.canary.stop()
        env = {"PREDICTOR_REDIS_URL": self.redis.url(), **tokens.env(self.root / "tokens")}
        self.canary = PredictorProcess(
            model_dir, self.root / f"canary-{time.monotonic_ns()}.log", env=env,
            http_port=self.canary_port, grpc_port=free_port(),
        ).start().wait_ready()  # fmt: skip
        return self.canary


def feedback(server: PredictorProcess, text: str, label: str) -> dict[str, Any]:
    resp = httpx.post(
        f"{server.url}/v1/models/sentiment/feedback",
        json={"text": text, "label": label},
        headers=tokens.WRITE,
        timeout=30,
    )
    assert resp.status_code == 202, resp.text
    return dict(resp.json())


def answers(server: PredictorProcess, texts: list[str]) -> list[str]:
    out: list[str] = []
    for start in range(0, len(texts), 64):
        resp = v1(server, texts[start : start + 64])
        assert resp.status_code == 200, resp.text
        out += [p["label"] for p in resp.json()["predictions"]]
    return out


@pytest.fixture
def loop(stable_dir: Path, tmp_path: Path) -> Iterator[Loop]:
    if PROMETHEUS_BIN is None or not Path(REDIS_BIN).exists():
        pytest.skip("needs prometheus and redis-server (.ci/run installs both)")
    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis").start()
    env = {"PREDICTOR_REDIS_URL": redis.url(), **tokens.env(tmp_path / "tokens")}
    stable = PredictorProcess(stable_dir, tmp_path / "stable.log", env=env)
    canary_port = free_port()
    (tmp_path / "prom").mkdir()
    prom = PrometheusServer(
        tmp_path / "prom", [f"127.0.0.1:{stable.http_port}", f"127.0.0.1:{canary_port}"]
    )
    lp = Loop(tmp_path, stable_dir, redis, stable, prom, canary_port)
    try:
        stable.start().wait_ready()
        prom.start().wait_ready()
        assert prom.wait_for(f'up{{instance="127.0.0.1:{stable.http_port}"}} == 1', 30)
        yield lp
    finally:
        for p in (lp.canary, stable):
            if p is not None:
                p.stop()
        prom.stop()
        redis.stop()


def rarest_label_texts(model_dir: Path, n: int) -> list[str]:
    """New tweets (corpus texts with a word added, so not in any evaluation set) the model
    answers with the label its reference has least of (found offline: not live traffic)."""
    ref = card(model_dir)["reference"]["predicted"]  # type: ignore[index]
    texts = [f"{t} today" for t in data.load_corpus().texts[:1500]]
    got = [LABELS[i] for i in predict(model_dir, texts).argmax(axis=1)]
    for label in sorted(LABELS, key=lambda lb: ref[lb]):
        picked = [t for t, g in zip(texts, got, strict=True) if g == label]
        if len(picked) >= 10:
            return (picked * (n // len(picked) + 1))[:n]
    raise AssertionError(f"the model answers one label only: {set(got)}")


def wait_counted(prom: PrometheusServer, expr: str, at_least: float, timeout: float = 30) -> None:
    """Until Prometheus has scraped what was just sent."""
    deadline = time.monotonic() + timeout
    while True:
        rows = prom.query(expr)
        if rows and float(rows[0]["value"][1]) >= at_least:
            return
        assert time.monotonic() < deadline, f"{expr} < {at_least}: {rows}"
        time.sleep(0.5)


@pytest.mark.timeout(900)
@pytest.mark.usefixtures("helm_bin", "shared_crds")
def test_drift_and_contradicting_feedback_retrain_publish_and_promote(loop: Loop) -> None:
    stable_version = str(card(loop.stable_dir)["version"])

    # no evidence yet: nothing to do, nothing written
    code, out = loop.run()
    assert code == cycle.DECIDED and "decision: NOTHING" in out, out
    assert not loop.state.exists() and not loop.step.exists()

    # a shifted input stream, and feedback that says the model is wrong
    shifted = rarest_label_texts(loop.stable_dir, 150)
    for i in range(0, len(shifted), 5):
        assert v1(loop.stable, shifted[i : i + 5]).status_code == 200
    contradicted = list(dict.fromkeys(shifted))[:25]
    served_now = answers(loop.stable, contradicted)
    for _ in range(2):  # the same writer twice: the re-post replaces, it adds no weight
        for text, served in zip(contradicted, served_now, strict=True):
            feedback(loop.stable, text, next(lb for lb in LABELS if lb != served))
    sel = f'{{version="{stable_version}"}}'
    wait_counted(loop.prometheus, f"sum(predictor_feedback_total{sel})", 25)
    wait_counted(loop.prometheus, f"sum(predictor_predictions_total{sel})", 150)

    code, out = loop.run("--dry-run")
    assert "decision: WOULD-RETRAIN" in out and "drift: ACT" in out, out
    assert "feedback accuracy: ACT" in out, out
    assert "50 records from 1 writer(s), 25 replaced by a re-post, 25 distinct texts" in out, out
    assert not loop.state.exists() and not loop.step.exists()

    code, out = loop.run()
    assert code == cycle.DECIDED and "decision: CANARY" in out, out
    st = loop.cycle_state()
    cand = st["candidate"]
    assert st["stable_version"] == stable_version and cand["percent"] == 10
    assert cand["storage_uri"] == f"pvc://models/sentiment/{cand['version']}/"
    published = loop.pvc / "sentiment" / cand["version"]
    assert (published / "model.pt").is_file() and Path(cand["dir"]) == published
    extra: dict[str, Any] = card(published)["extra_training_rows"]  # type: ignore[assignment]
    # The default share cap binds on the tiny corpus: a seeded sample of the 25 texts is kept
    # so that feedback (weight 3) is at most 10% of the training split.
    assert (extra["left_out"], extra["weight"], extra["max_share"]) == (0, 3, 0.1)
    assert extra["rows"] + extra["capped"] == 25 and extra["capped"] > 0
    n_train = card(published)["split"]["n_train"]  # type: ignore[index]
    assert extra["rows"] * 3 / n_train <= 0.1
    step = yaml.safe_load(loop.step.read_text())
    assert step["canary"] == {"enabled": True, "trafficPercent": 10,
                              "storageUri": cand["storage_uri"]}  # fmt: skip
    assert_step_deploys(loop.step, cand["storage_uri"])

    # again, with no canary evidence yet: hold, and nothing changes
    before = (loop.state.read_text(), loop.step.read_text())
    code, out = loop.run()
    assert "decision: HOLD" in out and "canary traffic" in out, out
    assert (loop.state.read_text(), loop.step.read_text()) == before

    # the canary serves the published directory; both get traffic and feedback
    canary = loop.start_canary(published)
    corpus = data.load_corpus().texts
    csel = f'{{version="{cand["version"]}"}}'

    def live_evidence(texts: list[str], feedback_before: float) -> None:
        """Traffic on both versions, and the contradicting labels again on both (the feedback
        gate compares the two sides; the canary's labels alone would hold)."""
        for i in range(0, len(texts), 4):
            assert v1(loop.stable, texts[i : i + 4]).status_code == 200
            assert v1(canary, texts[i : i + 4]).status_code == 200
        for text, served in zip(contradicted, answers(loop.stable, contradicted), strict=True):
            feedback(canary, text, next(lb for lb in LABELS if lb != served))
            feedback(loop.stable, text, next(lb for lb in LABELS if lb != served))
        wait_counted(loop.prometheus, f"sum(predictor_feedback_total{csel})", feedback_before + 25)
        wait_counted(loop.prometheus, f"sum(predictor_feedback_total{sel})", feedback_before + 50)

    # The canary's request series must be in Prometheus before the evidence is sent:
    # increase() counts from a series' first sample, so requests that came before the
    # canary's first scrape would be missing from the traffic gate (seen in CI: 40 of 50).
    assert v1(canary, ["the canary's first request"]).status_code == 200
    wait_counted(loop.prometheus, f"sum(predictor_requests_total{csel})", 1)
    live_evidence(corpus[2000:2200], 0)
    code, out = loop.run()
    assert "decision: STEP" in out and "10% -> 50%" in out, out
    assert loop.cycle_state()["candidate"]["percent"] == 50
    assert_step_deploys(loop.step, cand["storage_uri"])

    # a step is judged on what it has seen since: right after it, nothing new, so hold
    before = (loop.state.read_text(), loop.step.read_text())
    code, out = loop.run()
    assert "decision: HOLD" in out, out
    assert (loop.state.read_text(), loop.step.read_text()) == before

    time.sleep(2)  # the step's own window starts after it was written
    live_evidence(corpus[2200:2400], 25)
    code, out = loop.run()
    assert "decision: PROMOTE" in out, out
    st = loop.cycle_state()
    assert st["candidate"] is None and st["stable_version"] == cand["version"]
    assert st["stable_uri"] == cand["storage_uri"]
    step = yaml.safe_load(loop.step.read_text())
    assert step["model"] == {"storageUri": cand["storage_uri"]}
    assert step["canary"]["enabled"] is False
    assert_step_deploys(loop.step, cand["storage_uri"])
    (loop.root / "transcript.txt").write_text("\n\n".join(loop.outputs))


@pytest.mark.timeout(900)
def test_a_candidate_trained_on_flipped_labels_is_rolled_back(
    loop: Loop, flipped_dir: Path
) -> None:
    stable_version = str(card(loop.stable_dir)["version"])
    bad_version = str(card(flipped_dir)["version"])
    # as a previous run would have left it: the bad candidate at its first step
    state = cycle.State(
        stable_version, str(loop.stable_dir),
        candidate=cycle.Candidate(bad_version, str(flipped_dir), "pvc://models/x/bad/", 10),
    )  # fmt: skip
    loop.state.write_text(yaml.safe_dump(cycle.configmap("c", state, None)))
    canary = loop.start_canary(flipped_dir)
    texts, truth = labelled_training_texts(loop.stable_dir, 60)
    for text in texts:
        assert v1(loop.stable, [text]).status_code == 200
        assert v1(canary, [text]).status_code == 200
    for text, label in zip(texts, truth, strict=True):
        feedback(loop.stable, text, label)
        feedback(canary, text, label)
    wait_counted(loop.prometheus, f'sum(predictor_feedback_total{{version="{bad_version}"}})', 60)
    wait_counted(loop.prometheus, f'sum(predictor_requests_total{{version="{bad_version}"}})', 30)

    code, out = loop.run()
    assert code == cycle.DECIDED
    assert "decision: ROLLBACK" in out and "[FAIL -> rollback] feedback accuracy" in out, out
    st = loop.cycle_state()
    assert st["candidate"] is None and st["stable_version"] == stable_version
    assert st["rejected"][-1]["version"] == bad_version
    assert yaml.safe_load(loop.step.read_text()) == {
        "canary": {"enabled": True, "trafficPercent": 0}
    }


def labelled_training_texts(model_dir: Path, n: int) -> tuple[list[str], list[str]]:
    """Texts (and their corpus labels) the stable model trained on."""
    split: dict[str, Any] = card(model_dir)["split"]  # type: ignore[assignment]
    corpus = data.load_corpus()
    train, _ = data.stratified_split(
        corpus.labels, split["test_fraction"], split["seed"], split["limit"]
    )
    pick = train[:n]
    return [corpus.texts[i] for i in pick], [LABELS[corpus.labels[i]] for i in pick]


@pytest.fixture(scope="module")
def flipped_dir(stable_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stable recipe with every training label flipped (negative <-> positive, neutral ->
    negative), passed in as heavily weighted extra rows."""
    from training import build

    texts, truth = labelled_training_texts(stable_dir, 400)
    flip = {"negative": "positive", "positive": "negative", "neutral": "negative"}
    root = tmp_path_factory.mktemp("flipped")
    rows = root / "flipped.jsonl"
    rows.write_text("".join(json.dumps({"text": t, "label": flip[lb]}) + "\n"
                            for t, lb in zip(texts, truth, strict=True)))  # fmt: skip
    out = root / "model"
    build.build(build.parse_args([*tiny_build_args(stable_dir), "--out", str(out),
                                  "--extra-rows", str(rows), "--extra-weight", "5"]))  # fmt: skip
    return out
