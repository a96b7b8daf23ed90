"""Circuit breaker and once-per-interval logging."""

from __future__ import annotations

import logging

import pytest

from predictor.featurestore.breaker import CircuitBreaker, State, ThrottledLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_probes_once() -> None:
    clock = Clock()
    b = CircuitBreaker(failures=3, reset_s=5, clock=clock)
    b.failure()
    b.failure()
    b.success()  # not consecutive any more
    b.failure()
    b.failure()
    assert b.allow() and b.state is State.CLOSED
    b.failure()
    assert b.state is State.OPEN and not b.allow()
    clock.now = 4.9
    assert not b.allow()
    clock.now = 5.0
    assert b.allow() and b.state is State.HALF_OPEN
    assert not b.allow(), "only one probe while half-open"
    b.failure()  # the probe failed: open again for a full period
    assert b.state is State.OPEN and not b.allow()
    clock.now = 10.0
    assert b.allow()
    b.success()
    assert b.state is State.CLOSED and b.allow()


def test_throttled_log_speaks_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    tl = ThrottledLog(logging.getLogger("t"), 30, clock)
    with caplog.at_level(logging.WARNING, "t"):
        assert tl.warning("down: %s", "x")
        for _ in range(50):
            clock.now += 0.5
            tl.warning("down: %s", "x")
        clock.now = 30.0
        assert tl.warning("down: %s", "y")
    assert [r.getMessage() for r in caplog.records] == [
        "down: x",
        "down: y (50 more since the last report)",
    ]
