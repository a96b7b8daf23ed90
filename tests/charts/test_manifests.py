"""manifests/ is the chart rendered for named values files: it must not drift from the chart."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.charts import chart_tools as ct

MANIFESTS = ct.REPO / "manifests"
RENDERED = sorted(MANIFESTS.glob("*.yaml"))
RENDERED = [p for p in RENDERED if not p.name.endswith(".values.yaml")]


def test_manifests_match_the_chart(tmp_path: Path) -> None:
    subprocess.run([str(ct.REPO / "scripts" / "render-manifests.sh"), str(tmp_path)], check=True)
    fresh = {p.name: p.read_text() for p in tmp_path.glob("*.yaml")}
    committed = {p.name: p.read_text() for p in RENDERED}
    assert sorted(fresh) == sorted(committed), "manifests/ has a missing or stale file"
    drifted = [name for name in fresh if fresh[name] != committed[name]]
    assert drifted == [], f"{drifted} drifted from the chart: run `make manifests` and commit"


@pytest.mark.parametrize("path", RENDERED, ids=[p.name for p in RENDERED])
def test_manifests_are_valid(path: Path, shared_crds: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    problems = [p for d in docs + ct.predictor_workloads(docs) for p in ct.validate_object(d)]
    assert problems == []
    assert not ct.by_kind(docs, "Secret"), "a password would be committed"
    assert not ct.by_kind(docs, "Pod"), "helm test pods do not belong in kubectl manifests"
    isvc = ct.one(docs, "InferenceService")
    assert isvc["metadata"]["namespace"] == "sentiment"
