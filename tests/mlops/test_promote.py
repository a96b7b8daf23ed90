import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mlops import promote
from mlops.canary import Rollout, next_values
from mlops.gates import Verdict
from mlops.heldout import HeldOutError, shared_heldout
from predictor.modelcard import ServingCard
from tests.charts import chart_tools as ct
from tests.charts.conftest import helm_bin, shared_crds
from tests.mlops.conftest import with_card
from tests.mlops.test_canary import chart_accepts
from training import data

EVAL = ("--eval-size", "300")
CI = ct.CHART / "ci"
__all__ = ["helm_bin", "shared_crds"]


def _run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stable: Path, cand: Path, *extra: str
) -> tuple[int, str, dict[str, object]]:
    out = tmp_path / "step.yaml"
    code = promote.main(["--stable", str(stable), "--candidate", str(cand), "--out", str(out),
                         *EVAL, *extra])  # fmt: skip
    text = capsys.readouterr().out
    values = yaml.safe_load(out.read_text()) if out.exists() else {}
    return code, text, values


def _percent(value: str, text: str) -> float:
    m = re.search(rf"{value}: (?:candidate )?([\d.]+)%?", text)
    assert m, text
    return float(m.group(1))


def test_shared_held_out_texts_were_in_neither_training_set(
    stable_dir: Path, candidate_dir: Path
) -> None:
    corpus = data.load_corpus()
    cards = [ServingCard.read(stable_dir), ServingCard.read(candidate_dir)]
    ev = shared_heldout(cards, 500, corpus=corpus)
    assert len(ev.texts) == 500 == len(set(ev.texts))
    for c in cards:
        split = c.model_extra["split"]  # type: ignore[index]
        train, _ = data.stratified_split(corpus.labels, split["test_fraction"], split["seed"],
                                         split["limit"])  # fmt: skip
        assert not {corpus.texts[i] for i in train} & set(ev.texts)
    again = shared_heldout(cards, 500, corpus=corpus)
    assert again.texts == ev.texts and np.array_equal(again.labels, ev.labels)


def test_same_weights_under_a_new_version_go_to_the_first_step(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stable_dir: Path, twin_dir: Path
) -> None:
    code, text, values = _run(capsys, tmp_path, stable_dir, twin_dir)
    assert code == 0, text
    assert "decision: PROMOTE" in text and "100.0% same label" in text
    assert values == {"canary": {"enabled": True, "trafficPercent": 10}}
    chart_accepts(values)


def test_the_macro_f1_rule_rolls_back(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stable_dir: Path, candidate_dir: Path
) -> None:
    lenient = _run(capsys, tmp_path, stable_dir, candidate_dir, "--max-f1-drop", "1",
                   "--min-agreement", "0")  # fmt: skip
    assert lenient[0] == 0, lenient[1]
    # must beat stable by a whole point of F1: impossible, so rollback to 0%
    code, text, values = _run(capsys, tmp_path, stable_dir, candidate_dir, "--max-f1-drop", "-1",
                              "--min-agreement", "0")  # fmt: skip
    assert code == 4, text
    assert "[FAIL -> rollback] macro-F1" in text
    assert values == {"canary": {"enabled": True, "trafficPercent": 0}}
    f1s = [float(x) for x in re.findall(r"candidate ([\d.]+) vs stable ([\d.]+)", text)[0]]
    assert all(0 < f < 1 for f in f1s)
    assert f1s[0] != f1s[1]  # other seed and rows: another model


def test_low_agreement_holds_for_a_human(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stable_dir: Path, candidate_dir: Path
) -> None:
    code, text, values = _run(capsys, tmp_path, stable_dir, candidate_dir, "--max-f1-drop", "1",
                              "--min-agreement", "0.85")  # fmt: skip
    agreement = _percent("agreement", text)
    assert 0 < agreement < 100
    assert code == (3 if agreement < 85 else 0), text
    if code == 3:
        assert values == {"canary": {"enabled": True, "trafficPercent": 0}}


def test_a_candidate_without_parity_record_rolls_back(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stable_dir: Path
) -> None:
    cand = with_card(stable_dir, tmp_path / "noparity", version="np-1", parity_max_abs_diff=None)
    code, text, _ = _run(capsys, tmp_path, stable_dir, cand)
    assert code == 4 and "[FAIL -> rollback] parity recorded" in text, text


def test_a_candidate_of_another_corpus_cannot_be_judged(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stable_dir: Path
) -> None:
    cand = with_card(stable_dir, tmp_path / "other", version="o-1", training_data_sha256="0" * 64)
    with pytest.raises(HeldOutError):
        shared_heldout([ServingCard.read(cand)], 10)
    code, _, _ = _run(capsys, tmp_path, stable_dir, cand)
    assert code == promote.FAILED


def test_past_the_first_step_needs_live_evidence(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stable_dir: Path, twin_dir: Path
) -> None:
    current = tmp_path / "current.yaml"
    current.write_text("canary: {enabled: true, trafficPercent: 10}\n")
    code, text, values = _run(capsys, tmp_path, stable_dir, twin_dir,
                              "--current-values", str(current))  # fmt: skip
    assert code == 3, text
    assert "[FAIL -> hold] live evidence" in text
    assert values == {"canary": {"enabled": True, "trafficPercent": 10}}


# --- the step deploys the candidate's storageUri ------------------------------------------------

KNATIVE_STABLE = CI / "knative-values.yaml"
STANDARD_STABLE = CI / "standard-hpa-values.yaml"


def _rendered_isvc(files: list[Path]) -> dict[str, Any]:
    docs = ct.render(files)
    isvc = ct.one(docs, "InferenceService")
    assert ct.validate_object(isvc) == []  # against the real InferenceService CRD
    for workload in ct.predictor_workloads(docs):
        assert ct.validate_object(workload) == []
    return isvc


def _uri(pod: dict[str, Any]) -> str:
    return str(ct.env_of(ct.container(pod, "kserve-container"))["STORAGE_URI"])


@pytest.mark.usefixtures("helm_bin", "shared_crds")
@pytest.mark.parametrize(
    ("current", "candidate"),
    [
        (KNATIVE_STABLE, "s3://tweet-sentiment-models/sentiment/twin-1/"),
        (STANDARD_STABLE, "oci://ghcr.io/tweet-sentiment/models/sentiment:twin-1"),
    ],
    ids=["knative", "standard"],
)
def test_the_first_step_renders_a_valid_canary_of_the_candidate_uri(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stable_dir: Path, twin_dir: Path,
    current: Path, candidate: str,
) -> None:  # fmt: skip
    code, text, values = _run(capsys, tmp_path, stable_dir, twin_dir, "--current-values",
                              str(current), "--candidate-uri", candidate)  # fmt: skip
    assert code == 0, text
    assert values == {"canary": {"enabled": True, "trafficPercent": 10, "storageUri": candidate}}
    stable_uri = yaml.safe_load(current.read_text())["model"]["storageUri"]
    isvc = _rendered_isvc([current, tmp_path / "step.yaml"])
    predictor = isvc["spec"]["predictor"]
    if current == KNATIVE_STABLE:
        # The new revision serves the candidate at 10%; the previous one keeps the stable model.
        assert predictor["canaryTrafficPercent"] == 10 and _uri(predictor) == candidate
    else:
        assert _uri(predictor) == stable_uri
        (canary,) = isvc["spec"]["canary"]
        assert canary["trafficPercent"] == 10 and _uri(canary["predictor"]) == candidate


@pytest.mark.usefixtures("helm_bin", "shared_crds")
@pytest.mark.parametrize("current", [KNATIVE_STABLE, STANDARD_STABLE], ids=["knative", "standard"])
def test_full_promotion_moves_the_stable_uri_and_rollback_keeps_it(
    tmp_path: Path, current: Path
) -> None:
    candidate = (
        "oci://ghcr.io/tweet-sentiment/models/sentiment:twin-1"
        if current == STANDARD_STABLE
        else "s3://tweet-sentiment-models/sentiment/twin-1/"
    )
    stable_uri = yaml.safe_load(current.read_text())["model"]["storageUri"]
    at50 = tmp_path / "at50.yaml"
    at50.write_text(yaml.safe_dump({"canary": {"enabled": True, "trafficPercent": 50,
                                               "storageUri": candidate}}))  # fmt: skip
    now = Rollout.from_values([current, at50])
    for verdict, want_stable in ((Verdict.PROMOTE, candidate), (Verdict.ROLLBACK, stable_uri)):
        step = tmp_path / f"{verdict.value}.yaml"
        step.write_text(yaml.safe_dump(next_values(verdict, now)))
        isvc = _rendered_isvc([current, at50, step])
        predictor = isvc["spec"]["predictor"]
        if verdict is Verdict.PROMOTE:
            assert _uri(predictor) == want_stable
            assert "canaryTrafficPercent" not in predictor and "canary" not in isvc["spec"]
        elif current == STANDARD_STABLE:
            assert _uri(predictor) == want_stable
            assert isvc["spec"]["canary"][0]["trafficPercent"] == 0
        else:  # Knative: 0% to the candidate revision, the previous (stable) revision serves
            assert predictor["canaryTrafficPercent"] == 0
            rollback = {"canary": {"enabled": True, "trafficPercent": 0}}
            assert yaml.safe_load(step.read_text()) == rollback


def test_a_uri_of_another_version_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, stable_dir: Path, twin_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    other = "s3://tweet-sentiment-models/sentiment/other-9/"
    code, _, _ = _run(capsys, tmp_path, stable_dir, twin_dir, "--candidate-uri", other)
    assert code == promote.FAILED
    assert "names version 'other-9' but the candidate's card is 'twin-1'" in caplog.text
    code, _, _ = _run(capsys, tmp_path, stable_dir, twin_dir, "--candidate-uri", "hf://x/y")
    assert code == promote.FAILED and "unknown storage scheme" in caplog.text
