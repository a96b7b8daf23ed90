"""Slow and idle clients cannot hold the server (issue 10, item 10).

The package's predictor runs with a 2 s header deadline, a 3 s keep-alive and a
cap of 64 connections (conftest.HOSTILE_ENV), so each limit is reached quickly;
the defaults (10 s, 65 s, 1024) are the same code with other numbers.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.fixtures.predictor_proc import PredictorProcess
from tests.reliability.conftest import assert_alive_and_ready
from tests.reliability.corpus import Target, parse_raw_response, receive
from tests.reliability.load import Stats, run_load
from tests.reliability.report import record, record_stats

HEAD = b"POST /v1/models/sentiment:predict HTTP/1.1\r\nHost: t\r\nX-Slow: "


def read_until_closed(sock: socket.socket, wait: float) -> bytes:
    """Everything the server sends; fails unless it closes the connection within `wait`."""
    start = time.monotonic()
    out = receive(sock, wait, lambda _: False)
    assert time.monotonic() - start < wait, f"the server kept the connection open for {wait} s"
    return out


async def slowloris(addr: tuple[str, int], give_up_s: float) -> bytes:
    """One byte of header every 0.3 s, until the server answers or closes."""
    reader, writer = await asyncio.open_connection(*addr)
    writer.write(HEAD)
    deadline = time.monotonic() + give_up_s
    try:
        while time.monotonic() < deadline:
            try:
                writer.write(b"a")
                await writer.drain()
            except (ConnectionError, OSError):
                break
            try:
                data = await asyncio.wait_for(reader.read(65536), 0.3)
            except TimeoutError:
                continue
            if data or reader.at_eof():
                return data + await reader.read()
        raise AssertionError(f"a slowloris client was held for {give_up_s} s")
    finally:
        writer.close()


async def test_slowloris_clients_get_408_and_others_are_served(
    hostile: PredictorProcess, target: Target
) -> None:
    lorises = [asyncio.create_task(slowloris(target.host_port, 30)) for _ in range(20)]
    normal = await run_load(hostile.url, clients=4, requests=40)
    answers = await asyncio.gather(*lorises)
    assert normal.statuses == {200: 40}, normal.statuses
    for raw in answers:
        answer = parse_raw_response(raw)
        assert answer.status == 408, raw[:200]
        assert "request headers not received within 2 s" in answer.error()
    assert_alive_and_ready(hostile)


def test_idle_connections_are_closed(target: Target) -> None:
    with socket.create_connection(target.host_port) as never_speaks:
        assert read_until_closed(never_speaks, wait=20) == b""  # closed, nothing sent
    with socket.create_connection(target.host_port) as kept_alive:
        kept_alive.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        raw = read_until_closed(kept_alive, wait=20)  # the answer, then closed when idle
        assert raw.startswith(b"HTTP/1.1 200")


def test_at_the_cap_the_stalest_idle_connection_makes_room(
    hostile: PredictorProcess, target: Target
) -> None:
    """64 connections that never speak fill the cap; the 65th is served, and the one idle
    the longest is closed with nothing sent (as a keep-alive expiry). The 503 for a cap
    full of requests being served: tests/predictor/serving/test_http_guard.py."""
    held = []
    for _ in range(64):
        held.append(socket.create_connection(target.host_port))
        time.sleep(0.005)  # accepted in this order
    try:
        with socket.create_connection(target.host_port) as extra:
            extra.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n")
            raw = receive(extra, 20, lambda got: b"\r\n\r\n" in got and got.endswith(b"}"))
            assert parse_raw_response(raw).status == 200, raw[:200]
        assert read_until_closed(held[0], wait=20) == b""
    finally:
        for s in held:
            s.close()
    wait_ready_again(hostile)
    assert_alive_and_ready(hostile)


def wait_ready_again(server: PredictorProcess) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the server notices the closes on its next loop turn
        try:
            if httpx.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)


STALLED_BODY = (
    b"POST /v1/models/sentiment:predict HTTP/1.1\r\nHost: t\r\n"
    b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"in'
)


@dataclass
class Attack:
    """Stalled bodies (the issue's R-U-Dead-Yet): headers and 4 bytes of a 100-byte body,
    then silence; with `reopen`, a connection the server closes is opened again."""

    addr: tuple[str, int]
    connections: int
    reopen: bool = False
    opened: int = 0
    answers: Counter[int] = field(default_factory=Counter)
    refused: int = 0  # could not connect or write at all

    async def one(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(*self.addr)
                writer.write(STALLED_BODY)
                await writer.drain()
            except OSError:
                self.refused += 1
                await asyncio.sleep(0.1)
                continue
            self.opened += 1
            try:
                read = asyncio.create_task(reader.read())
                stopped = asyncio.create_task(stop.wait())
                await asyncio.wait({read, stopped}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                if read.done() and not read.exception():
                    self.answers[int(parse_raw_response(read.result()).status)] += 1
                else:
                    read.cancel()
            finally:
                writer.close()
            if not self.reopen:
                await stop.wait()
                return
            await asyncio.sleep(0.1)

    async def open_all(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        """The connections, opened one by one (so each is accepted before the next)."""
        tasks = []
        for _ in range(self.connections):
            tasks.append(asyncio.create_task(self.one(stop)))
            await asyncio.sleep(0.002)
        while self.opened + self.refused < self.connections:
            await asyncio.sleep(0.01)
        return tasks

    async def beside(self, load: Awaitable[Stats]) -> Stats:
        """`load` (the innocents) while the attack is on; the attack ends with it."""
        stop = asyncio.Event()
        tasks = await self.open_all(stop)
        try:
            return await load
        finally:
            stop.set()
            await asyncio.gather(*tasks)


async def test_stalled_bodies_beyond_the_cap_do_not_lock_innocents_out(
    hostile: PredictorProcess, target: Target
) -> None:
    """96 stalled bodies against a cap of 64: every innocent request is answered 200, fast,
    and the stalled connections that made room got a JSON 408."""
    attack = Attack(target.host_port, connections=96)
    innocent = await attack.beside(run_load(hostile.url, clients=4, requests=80))
    assert innocent.statuses == {200: 80}, (innocent.statuses, innocent.transport_errors)
    assert innocent.p99_ms() < 5000, innocent.p99_ms()
    # 96 - 64 made room for the others, and more for the innocents' own connections.
    assert attack.answers[408] >= 96 - 64, attack.answers
    assert set(attack.answers) <= {408}, attack.answers
    wait_ready_again(hostile)
    assert_alive_and_ready(hostile)


@pytest.mark.reliability
async def test_idle_and_slow_clients_under_load(tiny_model_dir: object, tmp_path: object) -> None:
    """The issue's numbers with the default limits: 200 idle connections and 20
    one-byte-per-second clients beside 8 normal ones, for 40 s."""
    assert isinstance(tiny_model_dir, Path) and isinstance(tmp_path, Path)
    server = PredictorProcess(tiny_model_dir, tmp_path / "log").start().wait_ready()
    try:
        t = Target(server.url, server.grpc_target)
        baseline = await run_load(server.url, clients=8, seconds=10)
        idle = [socket.create_connection(t.host_port) for _ in range(200)]
        lorises = [asyncio.create_task(slowloris(t.host_port, 60)) for _ in range(20)]
        during = await run_load(server.url, clients=8, seconds=40)
        answers = await asyncio.gather(*lorises, return_exceptions=True)
        for s in idle:
            s.close()
        alive = server.proc is not None and server.proc.poll() is None
    finally:
        code = server.stop()
    held = sum(isinstance(a, BaseException) for a in answers)
    timed_out = sum(isinstance(a, bytes) and parse_raw_response(a).status == 408 for a in answers)
    record_stats("slow clients", "baseline (8 clients)", baseline)
    record_stats(
        "slow clients",
        "200 idle + 20 slowloris",
        during,
        crashes=0 if alive and code == 0 else 1,
        note=f"{timed_out}/20 slowloris got 408, {held} held",
    )
    record("slow clients", "after", requests=0, server_errors=0, crashes=0 if alive else 1)
    assert held == 0 and timed_out == 20
    assert during.server_errors == 0 and baseline.server_errors == 0


def innocent_note(stats: Stats) -> str:
    ok = stats.statuses.get(200, 0)
    others = {k: v for k, v in sorted(stats.statuses.items()) if k != 200}
    errors = dict(stats.transport_errors)
    return (
        f"innocent 200: {ok}/{stats.sent}"
        + (f", other {others}" if others else "")
        + (f", transport errors {errors}" if errors else "")
    )


@pytest.mark.reliability
async def test_stalled_body_attack(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The issue's attack at a small scale: a cap of 32 connections and three times as many
    stalled bodies (held; then reopened as soon as the server closes them), beside 8
    innocent clients. Before the fix (the same test on the previous commit, 2 shared cores)
    no innocent request was answered while the attack lasted: held, 0 of 3,520 got a 200
    (770 got 503, 2,750 a closed connection); reopened, 0 of 2,970. After it, all of them,
    p99 70-225 ms over three runs (baseline 60-95 ms)."""
    env = {"PREDICTOR_HTTP_MAX_CONNECTIONS": "32"}
    server = PredictorProcess(tiny_model_dir, tmp_path / "log", env=env).start().wait_ready()
    phases: dict[str, tuple[Stats, Attack | None]] = {}
    try:
        addr = Target(server.url, server.grpc_target).host_port
        phases["baseline (8 clients)"] = (await run_load(server.url, clients=8, seconds=10), None)
        for name, reopen in (("96 stalled bodies, held", False), ("96 reopened", True)):
            attack = Attack(addr, connections=96, reopen=reopen)
            phases[name] = (
                await attack.beside(run_load(server.url, clients=8, seconds=20)),
                attack,
            )
        wait_ready_again(server)
        phases["after"] = (await run_load(server.url, clients=8, seconds=5), None)
        alive = server.proc is not None and server.proc.poll() is None
    finally:
        code = server.stop()
    for phase, (stats, seen) in phases.items():
        note = innocent_note(stats)
        if seen is not None:
            note += f"; attack: {seen.opened} connections, answers {dict(seen.answers)}"
        record_stats("stalled bodies (cap 32)", phase, stats, crashes=0 if alive else 1, note=note)
    assert alive and code == 0
    for phase, (stats, seen) in phases.items():
        assert stats.server_errors == 0, (phase, stats.statuses)
        assert stats.statuses.get(200, 0) >= 0.99 * stats.sent, (phase, innocent_note(stats))
        assert stats.p99_ms() < 2000, (phase, stats.p99_ms())
        if seen is not None:
            assert seen.answers[408] >= 96 - 32, (phase, seen.answers)
