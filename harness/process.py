"""One child process with its output in a log file, waited on by polling, never by sleeping."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self, TypeVar

REPO = Path(__file__).resolve().parents[1]

T = TypeVar("T")


def free_port() -> int:
    """A port the kernel says is free now (racy by nature, fine on loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(
    check: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = 0.05,
    errors: tuple[type[BaseException], ...] = (),
) -> T:
    """`check()` until it returns something truthy; `errors` count as "not yet".

    A fixed sleep is either too short on a busy machine or wasted on an idle
    one; polling a condition is neither. Raises TimeoutError naming `what`.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except errors as exc:
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{what} after {timeout:g}s" + (f" (last: {last!r})" if last else "")
            )
        time.sleep(interval)


@dataclass
class ServerProcess:
    """`cmd` started with stdout and stderr appended to `log_path`."""

    cmd: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Self:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.cmd, cwd=self.cwd, env={**os.environ, **self.env}, stdout=log, stderr=log
            )
        return self

    def wait_until(
        self,
        ready: Callable[[], bool],
        timeout: float,
        errors: tuple[type[BaseException], ...] = (OSError,),
    ) -> Self:
        """Poll `ready` until true; fail at once, with the log, if the process exits first."""
        name = Path(self.cmd[0]).name

        def check() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode}:\n{self.logs()}")
            return ready()

        try:
            poll(check, timeout, f"{name} not ready", interval=0.1, errors=errors)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}:\n{self.logs()}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` and wait; kill (and re-raise the timeout) if it will not go."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
