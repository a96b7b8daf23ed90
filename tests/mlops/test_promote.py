import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlops import promote
from mlops.heldout import HeldOutError, shared_heldout
from predictor.modelcard import ServingCard
from tests.mlops.conftest import with_card
from tests.mlops.test_canary import chart_accepts
from training import data

EVAL = ("--eval-size", "300")


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
