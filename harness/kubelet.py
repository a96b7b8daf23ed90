"""Run a `harness.podspec.PodPlan` under podman the way the kubelet runs a pod.

Why: probes, readiness and termination are where a chart's numbers meet the process, and none
of them is exercised by starting a container by hand. In order, as the kubelet does: volumes are
materialised (emptyDir as a host directory or a sized tmpfs, Secret and ConfigMap files with
their modes and fsGroup), KServe's storage initializer runs (its own `kserve-storage` code, on
the host, with the env KServe gives it), the pod (infra container, shared namespaces) is
created, init containers run to completion one by one, then the containers start in spec order.
Each probe runs in its own worker with the rendered delay, period, timeout and thresholds;
liveness and readiness wait for the startup probe. A container that exits, or a startup or
liveness probe that runs out of failures (the kubelet would restart it), fails the run. Traffic
goes to the pod IP only once every container is ready (`url`). `stop` runs each container's
preStop, then SIGTERM, then SIGKILL at the grace deadline, all on one clock per pod.

Needs root (rootful podman with its bridge network: each pod gets its own IP, as in a cluster;
tmpfs mounts for memory emptyDirs).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from harness.podspec import Container, Hook, PodPlan, Probe, Volume, iter_mounts

PODMAN = ["podman", "--storage-driver", "vfs", "--runtime", "runc"]
# podman's default rlimits (nofile 1048576, a large nproc) are above what this sandbox lets runc
# set ("error setting rlimit type 7: operation not permitted"); these fit under it. The infra
# container takes them from containers.conf only, so they go there.
ULIMITS = ("nofile=20000:20000", "nproc=4096:4096")


class PodFailed(AssertionError):
    """The pod did not do what the kubelet needs: the message carries every container's log."""


@dataclass
class Termination:
    """How one container ended on stop."""

    exit_code: int
    seconds: float
    killed: bool  # SIGKILL at the grace deadline was needed
    pre_stop_seconds: float


@dataclass
class Restart:
    """A container the kubelet restarted: why, and the end of its log before it."""

    container: str
    reason: str
    log_tail: str

    def __repr__(self) -> str:
        return f"Restart({self.container}: {self.reason})"


@dataclass
class ProbeState:
    """A probe worker's counters, as the kubelet keeps them per container and probe."""

    probe: Probe
    ok: bool = False
    successes: int = 0  # consecutive
    failures: int = 0  # in all
    runs: int = 0
    last_error: str = ""
    consecutive_failures: int = 0


@dataclass
class PodRun:
    """One pod from a plan, started, probed and stopped; use as a context manager."""

    plan: PodPlan
    workdir: Path
    podman: Sequence[str] = tuple(PODMAN)
    ulimits: Sequence[str] = ULIMITS
    ip: str = ""
    started_at: float = 0.0
    ready_at: float | None = None
    failure: str | None = None
    probes: list[ProbeState] = field(default_factory=list)
    storage_seconds: float = 0.0
    restarts: list[Restart] = field(default_factory=list)
    kills: list[tuple[str, str]] = field(default_factory=list)  # (container, why) by probes
    generation: dict[str, int] = field(default_factory=dict)  # starts of each container - 1
    alive: dict[str, bool] = field(default_factory=dict)  # started and not seen exited
    _since: dict[str, float] = field(default_factory=dict)  # when each container last started
    _startup_ok: dict[str, int] = field(default_factory=dict)  # generation whose startup passed
    _why: dict[str, str] = field(default_factory=dict)  # a probe's reason for the kill
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _tmpfs: list[Path] = field(default_factory=list)
    _env: dict[str, str] = field(default_factory=dict)

    # --- podman -----------------------------------------------------------------------------------

    def _podman(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.podman, *args], capture_output=True, text=True, timeout=timeout, env=self._env
        )
        if check and result.returncode != 0:
            raise PodFailed(f"podman {' '.join(args[:3])} failed: {result.stderr.strip()}")
        return result

    def cid(self, container: str) -> str:
        return f"{self.plan.name}-{container}"

    def logs(self, container: str) -> str:
        return self._podman("logs", self.cid(container), check=False, timeout=30).stdout + (
            self._podman("logs", self.cid(container), check=False, timeout=30).stderr
        )

    def all_logs(self) -> str:
        parts = []
        for c in [*self.plan.init_containers, *self.plan.containers]:
            if not c.host_process:
                parts.append(f"--- {c.name} ---\n{self.logs(c.name)}")
        return "\n".join(parts)

    def exec(
        self, container: str, argv: Sequence[str], timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return self._podman("exec", self.cid(container), *argv, check=False, timeout=timeout)

    def running(self, container: str) -> bool:
        out = self._podman(
            "inspect", self.cid(container), "--format", "{{.State.Running}}", check=False
        )
        return out.stdout.strip() == "true"

    # --- start ------------------------------------------------------------------------------------

    def _materialise(self, vol: Volume) -> None:
        if vol.kind == "pvc":
            return
        vol.host.mkdir(parents=True, exist_ok=True)
        if vol.tmpfs_bytes is not None:
            opts = f"size={vol.tmpfs_bytes},mode=0777"
            subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(vol.host)], check=True)
            self._tmpfs.append(vol.host)
        if vol.kind == "emptyDir":
            vol.host.chmod(0o777)  # the kubelet's emptyDir mode
        for rel, (data, mode) in vol.files.items():
            path = vol.host / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(mode)
            if vol.gid is not None:
                os.chown(path, 0, vol.gid)
        if vol.gid is not None:
            os.chown(vol.host, 0, vol.gid)
            vol.host.chmod(vol.host.stat().st_mode | 0o2000 | (0o070 if not vol.files else 0o050))

    def _storage_initializer(self, c: Container) -> None:
        """KServe's storage initializer step with its own code: `Storage.download(uri, dir)`."""
        uri, dest = c.args
        target = next(src for src, dst, _ in iter_mounts(c) if dst == dest)
        code = "import sys; from kserve_storage import Storage; Storage.download(*sys.argv[1:])"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **c.env}
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-c", code, uri, target],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        self.storage_seconds = time.monotonic() - started
        if result.returncode != 0:
            raise PodFailed(f"storage-initializer {uri} failed:\n{result.stdout}{result.stderr}")
        for path in Path(target).rglob("*"):  # the initializer's files, readable by the pod
            path.chmod(0o755 if path.is_dir() else 0o644)

    def start(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "containers.conf"
        conf.write_text(f"[containers]\ndefault_ulimits = {json.dumps(list(self.ulimits))}\n")
        self._env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        for vol in self.plan.volumes.values():
            self._materialise(vol)
        self._podman("pod", "rm", "-f", "-t", "0", self.plan.name, check=False)
        self._podman("pod", "create", *self.plan.pod_args)
        infra = self._podman("pod", "inspect", self.plan.name, "--format", "{{.InfraContainerID}}")
        self._podman("start", infra.stdout.strip())  # the pod sandbox: its network, its IP
        self.ip = self._podman(
            "inspect", infra.stdout.strip(), "--format", "{{.NetworkSettings.IPAddress}}"
        ).stdout.strip()
        for c in self.plan.init_containers:
            if c.host_process:
                self._storage_initializer(c)
                continue
            self._podman("create", *c.create_args)
            run = self._podman("start", "--attach", self.cid(c.name), check=False, timeout=600)
            code = self._podman("inspect", self.cid(c.name), "--format", "{{.State.ExitCode}}")
            if code.stdout.strip() != "0":
                raise PodFailed(f"init container {c.name} failed:\n{run.stdout}{run.stderr}")
        for c in self.plan.containers:
            self._podman("create", *c.create_args)
        self.started_at = time.monotonic()
        for c in self.plan.containers:  # the kubelet starts them one after another, in order,
            self._podman("start", self.cid(c.name))  # and probes each from its own start
            self.generation[c.name], self.alive[c.name] = 0, True
            self._since[c.name] = time.monotonic()
            if not any(p.kind == "startup" for p in c.probes):
                self._startup_ok[c.name] = 0
            for probe in c.probes:
                state = ProbeState(probe)
                self.probes.append(state)
                t = threading.Thread(target=self._worker, args=(state,), daemon=True)
                t.start()
                self._threads.append(t)
        watch = threading.Thread(target=self._watch, daemon=True)
        watch.start()
        self._threads.append(watch)
        return self

    # --- probes -----------------------------------------------------------------------------------

    def _run_probe(self, container: str, p: Probe | Hook, timeout: float) -> None:
        """One probe or hook action against `container`; raises on failure."""
        if p.action == "http":
            scheme, path, port = p.target
            headers = dict(p.headers) if isinstance(p, Probe) else {}
            req = urllib.request.Request(f"{scheme}://{self.ip}:{port}{path}", headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    status = resp.status
            except urllib.error.HTTPError as err:
                status = err.code
            if not 200 <= status < 400:
                raise RuntimeError(f"HTTP {status}")
        elif p.action == "tcp":
            socket.create_connection((self.ip, int(p.target[0])), timeout=timeout).close()
        elif p.action == "exec":
            result = self.exec(container, p.target, timeout=timeout + 5)
            if result.returncode != 0:
                raise RuntimeError(f"exit {result.returncode}: {result.stderr.strip()[-200:]}")
        else:
            raise RuntimeError(f"unknown action {p.action}")

    def _worker(self, s: ProbeState) -> None:
        """One probe of one container, per container start: liveness and readiness only after
        the startup probe passed, every count reset when the container restarts."""
        p, name, seen = s.probe, s.probe.container, -1
        while not self._stop.is_set():
            gen = self.generation[name]
            if gen != seen:  # a (re)started container: counts reset, the delay again
                seen, s.ok, s.successes, s.consecutive_failures = gen, False, 0, 0
                if self._stop.wait(
                    max(0.0, self._since[name] + p.initial_delay - time.monotonic())
                ):
                    return
                continue
            started = self._startup_ok.get(name) == gen
            if not self.alive[name] or name in self._why or (p.kind == "startup") == started:
                self._stop.wait(0.2)  # down, being killed, before startup or startup passed
                continue
            tick = time.monotonic()
            try:
                self._run_probe(name, p, p.timeout)
                s.successes, s.consecutive_failures, passed = s.successes + 1, 0, True
            except Exception as exc:  # any probe error is a failure, as in the kubelet
                s.failures, s.consecutive_failures = s.failures + 1, s.consecutive_failures + 1
                s.last_error = f"{type(exc).__name__}: {exc}"
                s.successes, passed = 0, False
            s.runs += 1
            if passed and s.successes >= p.success_threshold:
                s.ok = True
                if p.kind == "startup":
                    self._startup_ok[name] = gen
            if not passed and s.consecutive_failures >= p.failure_threshold:
                s.ok = False
                if p.kind in ("startup", "liveness"):  # the kubelet kills it, with grace
                    self._why[name] = f"{p.kind} probe failed {s.consecutive_failures} times"
                    self.kills.append((name, self._why[name]))
                    grace = str(int(self.plan.grace_seconds))
                    threading.Thread(
                        target=self._podman, args=("stop", "-t", grace, self.cid(name)),
                        kwargs={"check": False}, daemon=True,
                    ).start()  # fmt: skip
            self._stop.wait(max(0.0, p.period - (time.monotonic() - tick)))

    def _watch(self) -> None:
        """restartPolicy Always: an exited container is started again after the kubelet's
        back-off (10 s, doubling, at most 300 s); a disk emptyDir past its sizeLimit evicts."""
        due: dict[str, float] = {}
        while not self._stop.wait(1.0):
            for c in self.plan.containers:
                name = c.name
                if self._stop.is_set():
                    return
                if self.alive[name] and not self.running(name) and not self._stop.is_set():
                    code = self._podman(
                        "inspect", self.cid(name), "--format", "{{.State.ExitCode}}", check=False
                    ).stdout.strip()
                    why = self._why.pop(name, f"exited with {code}")
                    self.restarts.append(Restart(name, why, self.logs(name)[-4000:]))
                    self.alive[name] = False
                    count = sum(r.container == name for r in self.restarts)
                    due[name] = time.monotonic() + min(300.0, 10.0 * 2 ** (count - 1))
                elif not self.alive[name] and time.monotonic() >= due.get(name, 0.0):
                    self._since[name] = time.monotonic()
                    self.generation[name] += 1
                    if not any(p.kind == "startup" for p in c.probes):
                        self._startup_ok[name] = self.generation[name]
                    self._podman("start", self.cid(name), check=False)
                    self.alive[name] = True
            for vol in self.plan.volumes.values():
                if vol.size_limit is not None and _du(vol.host) > vol.size_limit:
                    self.failure = f"emptyDir {vol.name} past its sizeLimit: the pod is evicted"

    def container_ready(self, c: Container) -> bool:
        gen = self.generation[c.name]
        if not self.alive[c.name] or self._startup_ok.get(c.name) != gen:
            return False
        return all(
            s.ok for s in self.probes if s.probe.container == c.name and s.probe.kind == "readiness"
        )

    def ready(self) -> bool:
        return all(self.container_ready(c) for c in self.plan.containers)

    def container_budget(self, c: Container) -> float:
        """Longest the probes give one container from its start to ready: the startup
        probe's budget, then the readiness probe's delay and periods for successThreshold."""
        return sum(p.budget for p in c.probes if p.kind == "startup") + sum(
            p.initial_delay + p.period * p.success_threshold
            for p in c.probes
            if p.kind == "readiness"
        )

    def ready_budget(self) -> float:
        return max(self.container_budget(c) for c in self.plan.containers)

    def wait_ready(self, max_restarts: int = 3) -> float:
        """Seconds from the first container's start to every container ready. Each container
        must be ready within its probes' budget from its own (latest) start."""
        while not self.ready():
            if self.failure or len(self.restarts) > max_restarts:
                raise PodFailed(
                    f"pod {self.plan.name}: {self.failure or 'crash loop'}; restarts: "
                    f"{self.restarts}\n{self.all_logs()}"
                )
            late = [
                c.name
                for c in self.plan.containers
                if not self.container_ready(c)
                and time.monotonic() > self._since[c.name] + self.container_budget(c) + 1.0
            ]
            if late:
                detail = [
                    f"{s.probe.container}/{s.probe.kind}: runs={s.runs} last={s.last_error}"
                    for s in self.probes
                ]
                raise PodFailed(
                    f"pod {self.plan.name}: {late} not ready within the probe budget: {detail}; "
                    f"kills: {self.kills}; restarts: {self.restarts}\n{self.all_logs()}"
                )
            time.sleep(0.2)
        self.ready_at = time.monotonic()
        return self.ready_at - self.started_at

    def url(self, port: int | str) -> str:
        """The pod's address on a container port: traffic only once the pod is ready."""
        if not self.ready() or self.failure:
            raise PodFailed(f"pod {self.plan.name} is not ready: no traffic ({self.failure})")
        return f"http://{self.ip}:{port}"

    # --- stop -------------------------------------------------------------------------------------

    def _terminate(self, c: Container, deadline: float, out: dict[str, Termination]) -> None:
        started = time.monotonic()
        if c.pre_stop is not None:
            hook = c.pre_stop
            try:
                if hook.action == "sleep":
                    time.sleep(min(float(hook.target[0]), max(0.0, deadline - time.monotonic())))
                elif hook.action == "exec":
                    self.exec(c.name, hook.target, timeout=max(1.0, deadline - time.monotonic()))
                else:
                    self._run_probe(c.name, hook, max(1.0, deadline - time.monotonic()))
            except Exception:  # a failing hook does not stop the termination, as in the kubelet
                pass
        pre_stop = time.monotonic() - started
        self._podman("kill", "--signal", "TERM", self.cid(c.name), check=False)
        killed = False
        try:
            self._podman("wait", self.cid(c.name), timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            killed = True
            self._podman("kill", "--signal", "KILL", self.cid(c.name), check=False)
            self._podman("wait", self.cid(c.name), check=False, timeout=60)
        code = self._podman("inspect", self.cid(c.name), "--format", "{{.State.ExitCode}}")
        out[c.name] = Termination(
            int(code.stdout.strip()), time.monotonic() - started, killed, pre_stop
        )

    def stop(self) -> dict[str, Termination]:
        """Pod deletion: every container's preStop, SIGTERM, SIGKILL at the grace deadline."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        deadline = time.monotonic() + self.plan.grace_seconds
        out: dict[str, Termination] = {}
        workers = [
            threading.Thread(target=self._terminate, args=(c, deadline, out))
            for c in self.plan.containers
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return out

    def remove(self) -> None:
        self._stop.set()
        self._podman("pod", "rm", "-f", "-t", "0", self.plan.name, check=False)
        for path in self._tmpfs:
            subprocess.run(["umount", str(path)], check=False, capture_output=True)
        shutil.rmtree(self.workdir / "volumes", ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
