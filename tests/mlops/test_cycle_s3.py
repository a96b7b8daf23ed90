"""`mlops.cycle` delivering to s3:// for real: the S3-API test server (moto's standalone server,
tests/fixtures/object_store.py), reached with boto3 as the CronJob would.

Bounded: one forced retrain of the tiny model (no live traffic needed), gated, published to the
bucket through `mlops.publish`, fetched back with KServe's own download code, and its first
canary step checked against the chart's schema and rendered with helm.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
import yaml
from kserve_storage import Storage

from mlops import cycle
from predictor.modelcard import ServingCard
from tests.charts.conftest import helm_bin, shared_crds
from tests.fixtures.object_store import S3Server, s3_server
from tests.fixtures.prometheus_server import PROMETHEUS_BIN, PrometheusServer
from tests.mlops.test_cycle import assert_step_deploys, tiny_build_args

__all__ = ["helm_bin", "s3_server", "shared_crds"]
BUCKET = "cycle-models"


@pytest.mark.timeout(600)
@pytest.mark.usefixtures("helm_bin", "shared_crds")
def test_a_forced_cycle_publishes_to_s3_and_its_step_deploys_that_uri(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, stable_dir: Path, tmp_path: Path
) -> None:
    if PROMETHEUS_BIN is None:
        pytest.skip("needs prometheus (.ci/run installs it)")
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    (tmp_path / "prom").mkdir()
    prom = PrometheusServer(tmp_path / "prom", []).start().wait_ready()
    try:
        argv = [
            "--stable", str(stable_dir), "--state", str(tmp_path / "state.yaml"),
            "--values-out", str(tmp_path / "step.yaml"), "--work", str(tmp_path / "work"),
            "--prometheus", prom.url, "--publish-to", f"s3://{BUCKET}/sentiment", "--force",
            "--eval-size", "300", "--min-agreement", "0", "--max-f1-drop", "0.3",
            # a different seed stands in for new evidence: the same data and seed rebuild the
            # identical model, with the identical version, which the offline gates hold
            "--", *tiny_build_args(stable_dir), "--seed", "1",
        ]  # fmt: skip
        lines: list[str] = []
        decision = cycle.run(cycle.parse_args(argv), lines.append)
    finally:
        prom.stop()
    out = "\n".join(lines)
    print(out)
    assert decision.action == "canary", out
    state = yaml.safe_load(
        yaml.safe_load((tmp_path / "state.yaml").read_text())["data"]["state.yaml"]
    )
    cand = state["candidate"]
    uri = f"s3://{BUCKET}/sentiment/{cand['version']}/"
    assert cand["storage_uri"] == uri and f"published {cand['version']} as {uri}" in out
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"sentiment/{cand['version']}/")
    names = {o["Key"].rsplit("/", 1)[-1] for o in listing.get("Contents", [])}
    assert {"model.pt", "model_card.json", "tokenizer.json"} <= names, names
    # What KServe's storage initializer would fetch is the candidate the cycle built.
    fetched = tmp_path / "mnt" / "models"
    Storage.download(uri, str(fetched))
    assert (
        ServingCard.read(fetched).version == cand["version"] != ServingCard.read(stable_dir).version
    )
    assert (fetched / "model.pt").read_bytes() == (Path(cand["dir"]) / "model.pt").read_bytes()
    assert_step_deploys(tmp_path / "step.yaml", uri)
