"""The predictor (or a stand-in that takes its flags) and redis-server, on free loopback ports."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
import redis

from harness.process import ServerProcess, free_port
from predictor import DEFAULT_MODEL_NAME

REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"


class OnLoopback:
    """The addresses of a predictor listening on loopback at `http_port` and `grpc_port`."""

    http_port: int
    grpc_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


class Predictor(Protocol):
    """What tests and benchmarks use of a running predictor, in a child process
    (`PredictorProcess`) or in this one (`harness.inprocess.InProcessPredictor`)."""

    @property
    def url(self) -> str: ...

    @property
    def grpc_target(self) -> str: ...

    def logs(self) -> str: ...


@dataclass
class PredictorProcess(OnLoopback):
    """`python -m <module>` with KServe's server flags; its log goes to a file.

    `module` is `predictor` for the real thing; the benchmark also launches its
    baselines (loadtest.baselines.*) through here, which take the same flags.
    """

    model_dir: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    module: str = "predictor"
    model_name: str = DEFAULT_MODEL_NAME
    server: ServerProcess | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.server.proc if self.server is not None else None

    @property
    def pid(self) -> int | None:
        return self.server.pid if self.server is not None else None

    def start(self) -> PredictorProcess:
        cmd = [
            sys.executable, "-m", self.module, "--model_name", self.model_name,
            "--http_port", str(self.http_port), "--grpc_port", str(self.grpc_port),
        ]  # fmt: skip
        env = {"PREDICTOR_MODEL_DIR": str(self.model_dir), "PREDICTOR_CPU_THREADS": "1", **self.env}
        self.server = ServerProcess(cmd, self.log_path, env=env).start()
        return self

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200

    def wait_ready(self, timeout: float = 60.0) -> PredictorProcess:
        assert self.server is not None, "start() first"
        self.server.wait_until(self.ready, timeout, errors=(httpx.HTTPError,))
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        return self.server.stop(sig, timeout) if self.server is not None else 0

    def logs(self) -> str:
        return self.server.logs() if self.server is not None else ""


@dataclass
class RedisServer:
    """`redis-server` with no persistence; `stop`/`start` keep the port.

    With `tls=True` it speaks only TLS, with a self-signed certificate for
    127.0.0.1 that `url()` tells the client to trust. `args` are extra
    redis-server flags (replication, cluster mode: harness/redis_deployments.py).
    """

    workdir: Path
    password: str | None = None
    tls: bool = False
    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    server: ServerProcess | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.server.proc if self.server is not None else None

    def url(self, password: str | None = None) -> str:
        pw = self.password if password is None else password
        auth = f":{pw}@" if pw else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.workdir / 'tls.crt'}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _tls_args(self) -> list[str]:
        cert, key = self.workdir / "tls.crt", self.workdir / "tls.key"
        if not cert.exists():
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                 "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                 "-addext", "subjectAltName=IP:127.0.0.1"],
                check=True, capture_output=True,
            )  # fmt: skip
        return [
            "--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert),
            "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> RedisServer:
        cmd = [
            REDIS_BIN, *(self._tls_args() if self.tls else ["--port", str(self.port)]),
            "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            "--logfile", str(self.workdir / "redis.log"),
        ]  # fmt: skip
        if self.password:
            cmd += ["--requirepass", self.password]
        cmd += self.args
        self.server = ServerProcess(cmd, self.workdir / "redis-server.out").start()
        self.server.wait_until(self.client().ping, timeout, errors=(redis.ConnectionError,))
        return self

    def stop(self) -> None:
        if self.server is not None and self.server.running():
            self.server.stop(timeout=10)
        self.server = None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to clients or replicas (a crashed node)."""
        if self.server is not None and self.server.running():
            self.server.stop(signal.SIGKILL, timeout=10)
        self.server = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url(), socket_timeout=2)
