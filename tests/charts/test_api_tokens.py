"""The chart's bearer tokens of the guarded routes: Secrets mounted as files, paths in the env,
routes off without them, and NOTES saying which are on."""

from __future__ import annotations

from tests.charts import chart_tools as ct
from tests.charts.test_featurestore_modes import notes, pod

WRITERS = ["apiTokens.feedbackWriter.existingSecret=fb-writers"]
READERS = ["apiTokens.reader.existingSecret=api-readers", "apiTokens.reader.existingSecretKey=k"]
TOKEN_DIR = "/var/run/secrets/predictor-tokens"


def test_by_default_no_token_is_mounted_and_the_guarded_routes_are_off() -> None:
    spec = pod(ct.render())
    predictor = ct.container(spec, "kserve-container")
    assert not any("TOKENS_FILE" in name for name in ct.env_of(predictor))
    assert "api-tokens" not in {v["name"] for v in spec["volumes"]}
    text = notes()
    assert "POST /v1/models/sentiment/feedback        OFF" in text
    assert "GET  /v1/users/<username>/sentiment   OFF" in text


def test_tokens_come_from_secrets_as_files_and_only_their_paths_are_in_the_env() -> None:
    spec = pod(ct.render(sets=WRITERS + READERS))
    predictor = ct.container(spec, "kserve-container")
    env = ct.env_of(predictor)
    assert env["PREDICTOR_FEEDBACK_WRITER_TOKENS_FILE"] == f"{TOKEN_DIR}/writer-tokens"
    assert env["PREDICTOR_READER_TOKENS_FILE"] == f"{TOKEN_DIR}/reader-tokens"
    mounts = {m["name"]: m for m in predictor["volumeMounts"]}
    assert mounts["api-tokens"] == {"name": "api-tokens", "mountPath": TOKEN_DIR, "readOnly": True}
    (volume,) = [v for v in spec["volumes"] if v["name"] == "api-tokens"]
    assert volume["projected"]["sources"] == [
        {"secret": {"name": "fb-writers", "items": [{"key": "tokens", "path": "writer-tokens"}]}},
        {"secret": {"name": "api-readers", "items": [{"key": "k", "path": "reader-tokens"}]}},
    ]
    assert volume["projected"]["defaultMode"] == 0o440
    text = notes(*WRITERS, *READERS)
    assert (
        "POST /v1/models/sentiment/feedback        ON, writer tokens from Secret fb-writers" in text
    )
    assert "GET  /v1/users/<username>/sentiment   ON" in text


def test_one_role_alone_turns_on_its_routes_only() -> None:
    spec = pod(ct.render(sets=READERS))
    env = ct.env_of(ct.container(spec, "kserve-container"))
    assert "PREDICTOR_FEEDBACK_WRITER_TOKENS_FILE" not in env
    assert env["PREDICTOR_READER_TOKENS_FILE"] == f"{TOKEN_DIR}/reader-tokens"
    text = notes(*READERS)
    assert "POST /v1/models/sentiment/feedback        OFF" in text
    assert "GET  /v1/models/sentiment/feedback        ON" in text
