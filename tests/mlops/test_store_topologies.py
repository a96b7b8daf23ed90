"""The offline tools read every store the predictor writes: standalone with a password file,
TLS, Sentinel and Cluster, with the predictor's key prefix, all real redis-server processes.

The writing side is the predictor's own RedisBackend with the settings the pod would read
(PREDICTOR_* and the mounted secret files); the reading side is what `mlops.drift --redis`
and `mlops.cycle --feedback` run, given only the URL the predictor was given.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.redis_deployments import CLI_BIN, SENTINEL_BIN, ClusterDeployment, SentinelDeployment
from harness.servers import REDIS_BIN, RedisServer
from mlops import drift
from mlops.feedback_data import FeedbackError, read_records
from mlops.live import NoData, from_featurestore
from mlops.store import StoreError, store_settings
from predictor.featurestore import keys
from predictor.featurestore.feedback_log import FeedbackRecord, text_hash
from predictor.featurestore.predictions import encode_prediction
from predictor.featurestore.registry import create_backend
from predictor.featurestore.settings import FeatureStoreSettings
from predictor.modelcard import ServingCard
from predictor.prediction import Prediction
from predictor.settings_base import SecretsSettings

PASSWORD = "mlops-store-pw-7f3a"
PREFIX = "team-a:"
VERSION = "v-topology"


def _require(*binaries: str) -> None:
    missing = [b for b in binaries if not Path(b).exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (.ci/run installs them)")


@pytest.fixture(params=["password-file", "tls", "sentinel", "cluster"])
def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A URL with no password in it, as the chart gives the predictor; the password is the
    file PREDICTOR_REDIS_PASSWORD in PREDICTOR_SECRETS_DIR, the prefix PREDICTOR_KEY_PREFIX."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "PREDICTOR_REDIS_PASSWORD").write_text(PASSWORD + "\n")
    monkeypatch.setenv("PREDICTOR_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("PREDICTOR_KEY_PREFIX", PREFIX)
    kind = request.param
    if kind == "sentinel":
        _require(REDIS_BIN, SENTINEL_BIN)
        sentinel = SentinelDeployment(tmp_path / "sentinel", password=PASSWORD).start()
        yield sentinel.url(password="")
        sentinel.stop()
    elif kind == "cluster":
        _require(REDIS_BIN, CLI_BIN)
        cluster = ClusterDeployment(tmp_path / "cluster", password=PASSWORD).start()
        yield cluster.url(password="")
        cluster.stop()
    else:
        _require(REDIS_BIN)
        server = RedisServer(tmp_path, password=PASSWORD, tls=kind == "tls").start()
        if kind == "tls":
            monkeypatch.setenv("PREDICTOR_REDIS_TLS_CA_FILE", str(tmp_path / "tls.crt"))
            yield f"rediss://127.0.0.1:{server.port}/0"
        else:
            yield f"redis://127.0.0.1:{server.port}/0"
        server.stop()


def predictor_writes(
    url: str, predictions: dict[str, Prediction], fb: list[FeedbackRecord]
) -> None:
    """What a predictor pod configured with `url` writes: cached answers and feedback."""

    async def write() -> None:
        pod = FeatureStoreSettings(_secrets_dir=SecretsSettings().existing_dir(), redis_url=url)
        backend = create_backend(pod)  # as the pod builds it (Settings.load)
        try:
            items = {keys.prediction_key("sentiment", VERSION, "fp32", t): encode_prediction(p)
                     for t, p in predictions.items()}  # fmt: skip
            await backend.set_many(items, 600)
            await backend.append_history(
                {keys.feedback_key("sentiment"): [r.encode() for r in fb]}, 1000, 600
            )
        finally:
            await backend.close()

    asyncio.run(write())


def test_drift_and_feedback_read_what_the_predictor_wrote(store_url: str, stable_dir: Path) -> None:
    card = ServingCard.read(stable_dir)
    probabilities = dict.fromkeys(card.labels, 0.3)
    answers = {f"tweet {i}": Prediction(card.labels[i % 3], 0.45 + 0.05 * (i % 10), probabilities)
               for i in range(120)}  # fmt: skip
    now = time.time()
    fb = [FeedbackRecord(text_hash(f"tweet {i}"), f"tweet {i}", "positive", VERSION, "neutral",
                         0.5, now) for i in range(7)]  # fmt: skip
    predictor_writes(store_url, answers, fb)

    window = from_featurestore(store_settings(store_url), card, VERSION)
    assert window.n == 120  # every shard scanned, the prefix the predictor used
    assert window.labels == {lb: 40.0 for lb in card.labels}
    records = read_records(store_url, "sentiment", ttl_s=3600)
    assert [r.text for r in records] == [f"tweet {i}" for i in range(7)]
    # the same store under another prefix holds nothing of it
    with pytest.raises(NoData, match="no predictions"):
        from_featurestore(store_settings(store_url, key_prefix="other:"), card, VERSION)
    assert read_records(store_url, "sentiment", 3600, key_prefix="other:") == []


def test_a_wrong_password_file_is_an_error_that_never_shows_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stable_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _require(REDIS_BIN)
    server = RedisServer(tmp_path, password=PASSWORD).start()
    try:
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        (secrets / "PREDICTOR_REDIS_PASSWORD").write_text("wrong-password-123\n")
        monkeypatch.setenv("PREDICTOR_SECRETS_DIR", str(secrets))
        url = f"redis://127.0.0.1:{server.port}/0"
        with pytest.raises(FeedbackError) as err:
            read_records(url, "sentiment", 3600)
        assert "wrong-password-123" not in str(err.value)
        code = drift.main(["--model-dir", str(stable_dir), "--redis", url])
        assert code == drift.ERROR
        seen = capsys.readouterr()
        assert "wrong-password-123" not in seen.out + seen.err and PASSWORD not in seen.err
    finally:
        server.stop()


def test_memory_is_refused_with_the_way_out() -> None:
    with pytest.raises(StoreError, match="--feedback http://PREDICTOR"):
        store_settings("memory://")


def test_a_backend_that_cannot_enumerate_keys_says_so() -> None:
    """Scanning is the backend's to offer (`Backend.scan_values`): a plugin scheme without it
    is refused cleanly, not by a list of Redis schemes in the cycle."""
    from pydantic import SecretStr

    from mlops.store import scan_predictions
    from predictor.featurestore.memory import MemoryBackend
    from predictor.featurestore.registry import register_backend, unregister_backend

    register_backend("noscan", lambda _url, s: MemoryBackend(s.memory_max_entries))
    try:
        settings = FeatureStoreSettings(redis_url=SecretStr("noscan://x"))
        with pytest.raises(StoreError, match="cannot enumerate keys"):
            scan_predictions(settings, "sentiment", VERSION, 10)
    finally:
        unregister_backend("noscan")
