"""Shared fixtures live in tests/fixtures/; this file registers them and the skip policy."""

from __future__ import annotations

import pytest

from tests.skip_policy import SkipPolicy

pytest_plugins = [
    "tests.fixtures.predictor_proc",
    "tests.fixtures.redis_server",
    "tests.fixtures.fake_x_api",
    "tests.fixtures.prometheus_server",
]


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipPolicy(), "skip-policy")
