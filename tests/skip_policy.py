"""A skipped test did not run: under CI (`CI=true`) any skip fails the run.

Exceptions are listed in ALLOWED_SKIPS by test id prefix, each with the reason it
may not run in CI. Locally a skip is reported (pytest -ra) but does not fail.
"""

from __future__ import annotations

import os

import pytest

# test id prefix -> why CI may skip it. Keep this empty unless a test truly cannot run in CI.
ALLOWED_SKIPS: dict[str, str] = {}


def is_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def disallowed(skipped: list[str]) -> list[str]:
    """The skipped test ids that no allow-list entry covers."""
    return [t for t in skipped if not any(t.startswith(p) for p in ALLOWED_SKIPS)]


class SkipPolicy:
    """A pytest plugin object: collects skips, fails the session on disallowed ones in CI."""

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skipped.append(report.nodeid)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        bad = disallowed(self.skipped)
        if is_ci() and bad and exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        bad = disallowed(self.skipped)
        if bad and is_ci():
            terminalreporter.section("skips are failures in CI (tests/skip_policy.py)")
            for test_id in bad:
                terminalreporter.line(f"SKIPPED, not allowed: {test_id}")
