"""The PREDICTOR_REDIS_URL contract: standalone, Sentinel and Cluster URLs, and clear refusals."""

from __future__ import annotations

import pytest

from predictor.featurestore.redis_url import RedisTarget, Topology, parse_redis_url


def test_standalone_urls_are_left_to_redis_py() -> None:
    """Parsed once: the URL is kept for redis-py, with what the backend needs to know of it
    (whether it carries credentials, whether it is TLS)."""
    cases = {
        "redis://:pw@h:6379/2": (True, False),
        "rediss://h:6380/0": (False, True),
        "unix:///run/redis.sock": (False, False),
    }
    for url, (credentials, tls) in cases.items():
        assert parse_redis_url(url) == RedisTarget(
            Topology.STANDALONE, url=url, credentials_in_url=credentials, tls=tls
        )


def test_sentinel_url_names_sentinels_master_db_and_password() -> None:
    got = parse_redis_url("redis+sentinel://:p%40ss@s1:26379,s2,[::1]:26380/mymaster/3")
    assert got == RedisTarget(
        Topology.SENTINEL,
        hosts=(("s1", 26379), ("s2", 26379), ("::1", 26380)),
        master="mymaster",
        db=3,
        password="p@ss",
    )
    plain = parse_redis_url("redis+sentinel://10.0.0.1:5000/cache")
    assert plain.hosts == (("10.0.0.1", 5000),) and plain.db == 0 and plain.password is None


def test_cluster_url_takes_seed_nodes() -> None:
    got = parse_redis_url("redis+cluster://app:pw@n1:7000,n2:7001,n3")
    assert got == RedisTarget(
        Topology.CLUSTER,
        hosts=(("n1", 7000), ("n2", 7001), ("n3", 6379)),
        username="app",
        password="pw",
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mongodb://x", r"scheme 'mongodb' is not one of redis, rediss, unix"),
        ("redis+sentinel://s1:26379", r"needs the master set's name"),
        ("redis+sentinel://s1:26379/m/x", r"DB 'x' is no number"),
        ("redis+sentinel://s1:26379/m/1/2", r"needs the master set's name"),
        ("redis+cluster://n1:7000/0", r"takes no path"),
        ("redis+cluster://:pw@/", r"names no HOST:PORT"),
        ("redis+cluster://n1:99999", r"port 99999 is out of range"),
        ("redis+cluster://n1:7000,bad host", r"'bad host' is not HOST:PORT"),
        ("redis+sentinel://s1/m?ssl=true", r"takes no query string"),
    ],
)
def test_malformed_urls_say_what_is_wrong_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        parse_redis_url(url.replace("://", "://:hunter2-canary@", 1) if "@" not in url else url)
    assert "hunter2-canary" not in str(err.value)
