import hashlib
import json
from pathlib import Path

import pytest

from mlops import retrain
from tests.mlops.conftest import card


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def _argv(stable_dir: Path, candidates: Path, *extra: str) -> list[str]:
    encoder = stable_dir.parent / "hf-bert"  # the tiny encoder build_tiny_model_dir wrote
    return ["--serving", str(stable_dir), "--candidates", str(candidates),
            "--encoder", str(encoder), "--limit", "300", "--max-seq-length", "32",
            "--epochs", "3", "--seed", "7", *extra]  # fmt: skip


def test_retrain_writes_a_new_versioned_directory_and_leaves_serving_alone(
    stable_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digest(stable_dir)
    candidates = tmp_path / "candidates"
    assert retrain.main(_argv(stable_dir, candidates)) == 0
    out = capsys.readouterr().out
    built = list(candidates.iterdir())
    assert len(built) == 1, built  # no staging directory left behind
    new = built[0]
    c = card(new)
    assert new.name == c["version"] != card(stable_dir)["version"]
    assert c["split"]["seed"] == 7 and c["split"]["limit"] == 300  # type: ignore[index]
    assert _digest(stable_dir) == before
    report = json.loads((new / "candidate_report.json").read_text())
    ours, theirs = c["metrics"], card(stable_dir)["metrics"]
    assert report["serving"]["delta"]["macro_f1"] == pytest.approx(
        ours["macro_f1"] - theirs["macro_f1"]  # type: ignore[index]
    )
    assert report["reference"]["n"] == c["split"]["n_test"]  # type: ignore[index]
    assert f"python -m mlops.promote --stable {stable_dir} --candidate {new}" in out


def test_retrain_refuses_to_choose_out_or_force(stable_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        retrain.main(_argv(stable_dir, tmp_path / "c", "--out", str(stable_dir)))
    assert exc.value.code == 2


def test_candidates_inside_the_serving_directory_are_refused(stable_dir: Path) -> None:
    before = _digest(stable_dir)
    assert retrain.main(_argv(stable_dir, stable_dir / "candidates")) == 1
    assert _digest(stable_dir) == before
