"""Delivering a candidate to a pvc:// claim: staged copy, immutable versions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlops.deliver import DeliveryError, deliver


def test_a_version_is_copied_once_under_its_name(stable_dir: Path, tmp_path: Path) -> None:
    version = json.loads((stable_dir / "model_card.json").read_text())["version"]
    uri, local = deliver(stable_dir, "pvc://models/team/sentiment", tmp_path)
    assert uri == f"pvc://models/team/sentiment/{version}/"
    assert local == tmp_path / "team" / "sentiment" / version
    assert local is not None
    assert (local / "model.pt").read_bytes() == (stable_dir / "model.pt").read_bytes()
    assert [p.name for p in local.parent.iterdir()] == [version]  # no staging left behind
    assert deliver(stable_dir, "pvc://models/team/sentiment", tmp_path) == (uri, local)


def test_other_bytes_under_the_same_version_are_refused(stable_dir: Path, tmp_path: Path) -> None:
    changed = shutil.copytree(stable_dir, tmp_path / "changed")
    (changed / "tokenizer.json").write_text("{}")
    deliver(stable_dir, "pvc://models", tmp_path / "claim")
    with pytest.raises(DeliveryError, match="other bytes"):
        deliver(changed, "pvc://models", tmp_path / "claim")


@pytest.mark.parametrize(
    ("to", "root", "problem"),
    [
        ("pvc://Bad_Claim/x", True, "not pvc://"),
        ("pvc://models/x", False, "--pvc-root"),
    ],
)
def test_bad_targets(stable_dir: Path, tmp_path: Path, to: str, root: bool, problem: str) -> None:
    with pytest.raises(DeliveryError, match=problem):
        deliver(stable_dir, to, tmp_path if root else None)
