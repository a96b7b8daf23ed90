"""The mlops CLIs as a user runs them: `python -m mlops.X` in a subprocess."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.process import REPO

CLIS = ["mlops.cycle", "mlops.drift", "mlops.promote", "mlops.publish", "mlops.retrain"]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.mark.parametrize("module", CLIS)
def test_usage_names_the_command_a_user_types(module: str) -> None:
    out = run(module, "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: python -m {module} "), out.stdout[:200]
    assert ".py" not in out.stdout.splitlines()[0]


@pytest.mark.parametrize(
    ("module", "flag"),
    [("mlops.drift", "--window"), ("mlops.cycle", "--window"),
     ("mlops.cycle", "--canary-window"), ("mlops.promote", "--window")],
)  # fmt: skip
def test_a_malformed_window_is_a_one_line_usage_error(module: str, flag: str) -> None:
    out = run(module, "--prometheus", "http://127.0.0.1:9", flag, "1hour")
    assert out.returncode == 2, out
    last = out.stderr.strip().splitlines()[-1]
    assert last == (f"python -m {module}: error: argument {flag}: '1hour' is not a Prometheus "
                    "duration: a number and a unit (ms, s, m, h, d, w, y), e.g. 30m, 1h, "
                    "1h30m, 2d"), out.stderr  # fmt: skip
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("window", ["30m", "1h", "1h30m", "2d", "90s", "500ms"])
def test_prometheus_durations_are_accepted(window: str) -> None:
    from mlops import cycle, drift

    assert drift.parse_args(["--prometheus", "http://x", "--window", window]).window == window
    assert cycle.parse_args(["--prometheus", "http://x", "--canary-window", window]).canary_window


def test_the_step_window_is_cut_in_seconds_for_any_duration() -> None:
    from mlops.cycle import evidence_window

    assert evidence_window("1h30m", 0, 100) == "1h30m"
    assert evidence_window("1h30m", 1000.0, 1000.0 + 60) == "60s"
    assert evidence_window("10m", 1000.0, 1000.0 + 7200) == "600s"
