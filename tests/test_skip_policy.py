"""The skip policy itself: a skip fails a CI run unless it is allow-listed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests import skip_policy

REPO = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    case = tmp_path / "test_case.py"
    case.write_text("import pytest\n\ndef test_skips():\n    pytest.skip('no server')\n")
    conftest = tmp_path / "conftest.py"
    conftest.write_text(
        "from tests.skip_policy import SkipPolicy\n\n"
        "def pytest_configure(config):\n"
        "    config.pluginmanager.register(SkipPolicy(), 'skip-policy')\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(case),
         "--rootdir", str(tmp_path), "-c", "/dev/null"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={"CI": ci, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )  # fmt: skip


def test_a_skip_fails_the_run_in_ci(tmp_path: Path) -> None:
    result = _run(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "SKIPPED, not allowed" in result.stdout


def test_a_skip_is_only_reported_outside_ci(tmp_path: Path) -> None:
    assert _run(tmp_path, "").returncode == 0


def test_allow_list_entries_cover_by_prefix() -> None:
    ids = ["tests/a.py::test_x", "tests/b.py::test_y"]
    saved = dict(skip_policy.ALLOWED_SKIPS)
    try:
        skip_policy.ALLOWED_SKIPS["tests/a.py"] = "reason"
        assert skip_policy.disallowed(ids) == ["tests/b.py::test_y"]
    finally:
        skip_policy.ALLOWED_SKIPS.clear()
        skip_policy.ALLOWED_SKIPS.update(saved)
