"""`python -m observability` as a user runs it: it always says what it did."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.process import REPO
from observability import alerts, dashboard


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "observability", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})  # fmt: skip


def test_up_to_date_files_are_reported_not_silently_skipped(tmp_path: Path) -> None:
    before = {p: p.read_bytes() for p in (dashboard.DASHBOARD_PATH, alerts.RULES_PATH)}
    out = run(cwd=tmp_path)  # from anywhere: the outputs are the chart's files
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"{p} is up to date" for p in before], out.stdout
    assert {p: p.read_bytes() for p in before} == before  # nothing rewritten
    check = run("--check", cwd=tmp_path)
    assert check.returncode == 0 and check.stdout == "dashboard and alert rules are up to date\n"
