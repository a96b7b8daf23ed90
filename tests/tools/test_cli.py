"""The developer CLIs as a user runs them: no server is one line saying where they tried."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.process import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "argv",
    [
        ["tools.explain_png", "I love it"],
        ["tools.user_sentiment", "someone", "--token-file", "{token}"],
    ],
)
def test_no_server_is_one_line_naming_the_url(argv: list[str], tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("a-reader-token-of-enough-length\n")
    argv = [a.replace("{token}", str(token)) for a in argv]
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = subprocess.run(
        [sys.executable, "-m", *argv, "--url", url],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: could not reach the predictor at " + url)
    assert "Traceback" not in done.stderr


def test_usage_names_the_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tools.explain_png", "--help"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m tools.explain_png")
