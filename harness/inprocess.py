"""The predictor as the composition root builds it, served on free loopback ports by a
thread of this process: real sockets and real clients, no child process to start.

For tests where the wire matters but the process does not (the feature store inside a
server, the routes, a Prometheus scrape). Signals, drains under SIGTERM, memory and
anything that kills the server still need `harness.servers.PredictorProcess`. The same
interface as that class, so a fixture can switch between them. Metrics live in this
process's one Prometheus registry: run one in-process predictor at a time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness.process import free_port, poll
from harness.servers import OnLoopback
from predictor import DEFAULT_MODEL_NAME
from predictor.app import Listeners, Settings, build_server
from predictor.serving.logs import JsonFormatter
from predictor.serving.server import PredictorServer
from predictor.tracing import Tracing

_ENV_LOCK = threading.Lock()


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """`env` over os.environ while the settings are read (what a child process would get)."""
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@dataclass
class InProcessPredictor(OnLoopback):
    """`PredictorProcess`'s interface, served by a thread: start, wait_ready, stop, logs."""

    model_dir: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    model_name: str = DEFAULT_MODEL_NAME
    tracing: Tracing | None = None  # None: as the environment's OTEL_* say
    server: PredictorServer | None = None
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _handler: logging.Handler | None = None
    exit_code: int | None = None

    @property
    def pid(self) -> int:
        return os.getpid()

    def start(self) -> InProcessPredictor:
        env = {"PREDICTOR_MODEL_DIR": str(self.model_dir), "PREDICTOR_CPU_THREADS": "1", **self.env}
        with _environment(env):
            settings = Settings.load()
        listeners = Listeners(http_port=self.http_port, grpc_port=self.grpc_port)
        self.server = build_server(settings, listeners, self.model_name, tracing=self.tracing)
        self._handler = logging.FileHandler(self.log_path)
        self._handler.setFormatter(JsonFormatter())
        root = logging.getLogger()
        root.addHandler(self._handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def _run(self, started: threading.Event) -> None:
        assert self.server is not None
        self._loop = asyncio.new_event_loop()
        started.set()
        try:
            self.exit_code = self._loop.run_until_complete(self.server.serve(handle_signals=False))
        finally:
            self._loop.close()

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200

    def wait_ready(self, timeout: float = 60.0) -> InProcessPredictor:
        def up() -> bool:
            if not self.running():
                raise RuntimeError(f"in-process predictor stopped; see {self.log_path}")
            return self.ready()

        poll(up, timeout, "in-process predictor ready", errors=(httpx.HTTPError,))
        return self

    def stop(self, timeout: float = 30.0) -> int:
        """The drain SIGTERM would run, then the thread's end; the server's exit code."""
        if self._thread is not None and self._loop is not None and self.server is not None:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self.server.request_stop)
            self._thread.join(timeout)
            assert not self._thread.is_alive(), f"in-process predictor did not stop in {timeout}s"
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler.close()
            self._handler = None
        return self.exit_code or 0

    def logs(self) -> str:
        if self._handler is not None:
            self._handler.flush()
        return self.log_path.read_text(encoding="utf-8") if self.log_path.exists() else ""
