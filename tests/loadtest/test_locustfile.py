"""The locustfile runs headless against a real predictor and refuses remote hosts."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from harness.process import REPO
from harness.servers import PredictorProcess


def locust(
    host: str, *args: str, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "locust", "-f", str(REPO / "loadtest" / "locustfile.py"),
           "--headless", "--host", host, "--only-summary", *args]  # fmt: skip
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=90, cwd=cwd, env={**os.environ, **(env or {})}
    )


def test_locust_run_has_requests_and_no_failures(
    predictor: PredictorProcess, tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = locust(
        predictor.url, "-u", "2", "-r", "2", "-t", "2s", "--csv", str(tmp_path / "run"),
        env={"LOADTEST_MODEL_DIR": str(tiny_model_dir)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {r["Name"]: r for r in csv.DictReader((tmp_path / "run_stats.csv").open())}
    total = rows["Aggregated"]
    assert int(total["Request Count"]) > 0
    assert int(total["Failure Count"]) == 0
    assert (
        int(rows["v1 predict"]["Request Count"]) > 0 and int(rows["v2 infer"]["Request Count"]) > 0
    )


def test_locust_refuses_a_remote_host() -> None:
    out = locust("http://192.0.2.10:8080", "-u", "1", "-r", "1", "-t", "2s")
    assert out.returncode != 0
    assert "non-loopback" in out.stderr
    assert "Ramping" not in out.stderr  # it never started users


def test_locust_runs_from_any_directory(
    predictor: PredictorProcess, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Started outside the repository (Locust puts only the file's directory on sys.path)."""
    out = locust(
        predictor.url, "-u", "1", "-r", "1", "-t", "2s", "--csv", str(tmp_path / "run"),
        env={"LOADTEST_MODEL_DIR": str(tiny_model_dir)}, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ModuleNotFoundError" not in out.stderr
    rows = {r["Name"]: r for r in csv.DictReader((tmp_path / "run_stats.csv").open())}
    assert int(rows["Aggregated"]["Request Count"]) > 0
