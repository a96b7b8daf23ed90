"""Shared fixtures live in tests/fixtures/; this file only registers them."""

pytest_plugins = [
    "tests.fixtures.predictor_proc",
    "tests.fixtures.redis_server",
    "tests.fixtures.fake_x_api",
    "tests.fixtures.prometheus_server",
]
