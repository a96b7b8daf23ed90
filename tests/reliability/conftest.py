"""One predictor for the fast reliability checks, with the prediction cache off so every
text reaches the batcher (where one bad text could fail its neighbours)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.scrape import read_counter
from tests.fixtures.predictor_proc import PredictorProcess
from tests.reliability.corpus import Target

HOSTILE_ENV = {
    "PREDICTOR_CACHE_ENABLED": "false",
    "PREDICTOR_MAX_BATCH_SIZE": "8",
    "PREDICTOR_HTTP_HEADER_TIMEOUT_S": "2",
    "PREDICTOR_HTTP_KEEP_ALIVE_S": "3",
    "PREDICTOR_HTTP_MAX_CONNECTIONS": "64",
}


@pytest.fixture(scope="package")
def hostile(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PredictorProcess]:
    log = tmp_path_factory.mktemp("hostile") / "predictor.log"
    server = PredictorProcess(tiny_model_dir, log, env=HOSTILE_ENV).start().wait_ready()
    yield server
    # After every hostile request of the package: no server error was counted, no
    # traceback reached the log, and the process drains and exits cleanly.
    counted = read_counter(server.url, "predictor_requests_total", "code") or {}
    faults = {code: n for code, n in counted.items() if code.startswith("5") and code != "503"}
    code = server.stop()
    assert faults == {}, f"server errors counted: {faults}"
    assert "Traceback" not in server.logs(), "a traceback reached the log stream"
    assert code == 0, f"the predictor exited with {code} after the hostile requests"


@pytest.fixture(scope="package")
def target(hostile: PredictorProcess) -> Target:
    return Target(hostile.url, hostile.grpc_target)


def assert_alive_and_ready(server: PredictorProcess) -> None:
    """The process is running and says ready, and a normal request still works."""
    assert server.proc is not None and server.proc.poll() is None, server.logs()[-3000:]
    assert httpx.get(f"{server.url}/v2/health/ready", timeout=10).status_code == 200
    resp = httpx.post(
        f"{server.url}/v1/models/sentiment:predict", json={"instances": ["still fine"]}, timeout=30
    )
    assert resp.status_code == 200, resp.text


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """`make reliability`: the figures of every check that recorded some, as one table."""
    from tests.reliability.report import ROWS, table

    if ROWS:
        terminalreporter.write_sep("=", "reliability figures")
        terminalreporter.write_line(table(ROWS))
