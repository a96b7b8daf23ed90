"""The whole REST app as the composition root builds it, driven in process (no child
process, no port): predict on v1 and v2, explain, feedback, the error table and /metrics.
Signals, drains, ports, the connection layer and gRPC stay with the process tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures import tokens
from tests.fixtures.inprocess import InProcess, serve_in_process, settings_for

pytestmark = pytest.mark.asyncio(loop_scope="module")
LABELS = {"negative", "neutral", "positive"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[InProcess]:
    files = tokens.write_files(tmp_path_factory.mktemp("tokens"))
    async for served in serve_in_process(
        settings_for(tiny_model_dir, tokens=files, max_body_bytes=4096)
    ):
        yield served


def _sample(text: str, name: str, **labels: str) -> float:
    """Sum of one series over the samples whose labels include `labels`."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


async def _metric(app: InProcess, name: str, **labels: str) -> float:
    return _sample((await app.client.get("/metrics")).text, name, **labels)


async def test_ready_and_metadata_follow_the_loaded_model(app: InProcess) -> None:
    assert (await app.client.get("/v2/health/ready")).json() == {"ready": True}
    meta = (await app.client.get("/v2/models/sentiment")).json()
    version = app.server.model.version
    assert meta["versions"] == [version] and meta["parameters"]["version"] == version
    assert meta["parameters"]["precision"] in {"fp32", "bf16"}


async def test_v1_predict(app: InProcess) -> None:
    resp = await app.client.post(
        "/v1/models/sentiment:predict", json={"instances": ["I love it", {"text": "awful"}]}
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-request-id"]
    preds = resp.json()["predictions"]
    assert len(preds) == 2
    for p in preds:
        assert p["label"] in LABELS and set(p["probabilities"]) == LABELS
        assert p["score"] == max(p["probabilities"].values())


async def test_v2_infer_agrees_with_v1(app: InProcess) -> None:
    text = "the bus comes at nine"
    v1 = await app.client.post("/v1/models/sentiment:predict", json={"instances": [text]})
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}
    v2 = await app.client.post("/v2/models/sentiment/infer", json=body)
    assert v2.status_code == 200, v2.text
    outputs = {o["name"]: o for o in v2.json()["outputs"]}
    assert outputs["label"]["data"] == [v1.json()["predictions"][0]["label"]]
    assert outputs["probabilities"]["shape"] == [1, 3]


async def test_second_identical_request_is_a_cache_hit(app: InProcess) -> None:
    version = app.server.model.version
    body = {"instances": ["a text only this test sends"]}
    hits = await _metric(app, "predictor_cache_lookups_total", result="hit", version=version)
    first = await app.client.post("/v1/models/sentiment:predict", json=body)
    await app.flushed()
    second = await app.client.post("/v1/models/sentiment:predict", json=body)
    assert first.json() == second.json()
    after = await _metric(app, "predictor_cache_lookups_total", result="hit", version=version)
    assert after == hits + 1


async def test_explain_answers_predictions_and_contributions(app: InProcess) -> None:
    resp = await app.client.post(
        "/v1/models/sentiment:explain", json={"instances": ["really nice phone"]}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    (explanation,) = body["explanations"]
    assert explanation["words"] == ["really", "nice", "phone"]
    assert len(explanation["contributions"]) == 3
    assert explanation["label"] == body["predictions"][0]["label"]


async def test_feedback_is_stored_through_the_store_and_read_back(app: InProcess) -> None:
    resp = await app.client.post(
        "/v1/models/sentiment/feedback",
        json={"text": "  feedback   text ", "label": "positive"},
        headers=tokens.WRITE,
    )
    assert resp.status_code == 202, resp.text
    assert resp.json()["label"] == "positive"
    await app.flushed()  # the store's one write-behind queue carried it
    listed = await app.client.get("/v1/models/sentiment/feedback", headers=tokens.READ)
    records = [orjson.loads(line) for line in listed.content.splitlines()]
    assert any(r["text"] == "feedback text" and r["label"] == "positive" for r in records)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "names"),
    [
        ("POST", "/v1/models/sentiment:predict", {"instances": []}, 400, "instances"),
        ("POST", "/v1/models/sentiment:predict", {"instances": [7]}, 400, "instances[0]"),
        ("POST", "/v2/models/sentiment/infer", {"inputs": []}, 400, "inputs"),
        ("POST", "/v1/models/nope:predict", {"instances": ["x"]}, 404, "nope"),
        ("GET", "/v2/models/sentiment/versions/999", None, 404, "999"),
        ("GET", "/v2/repository/index", None, 403, "repository"),
        ("POST", "/v1/models/sentiment:predict", {"instances": ["x" * 5000]}, 413, "limit"),
        ("POST", "/v1/models/sentiment/feedback", {"text": "x", "label": "meh"}, 400, "label"),
        ("POST", "/v1/models/sentiment/feedback", {"text": "x", "label": "positive"}, 401,
         "writer token"),
        ("GET", "/v1/users/someone/sentiment", None, 401, "reader token"),
        ("GET", "/v1/models/sentiment:predict", None, 405, "takes POST"),
        ("GET", "/v1/models/sentiment:explain", None, 405, "takes POST"),
        ("GET", "/v2/models/sentiment/infer", None, 405, "takes POST"),
        ("DELETE", "/v1/models/sentiment/feedback", None, 405, "takes GET, POST"),
    ],
)  # fmt: skip
async def test_error_table(
    app: InProcess, method: str, path: str, body: object, status: int, names: str
) -> None:
    """Each row of the README's error table: the status and a JSON message naming the cause
    (with the writer's token, except for the 401 rows)."""
    headers = {} if status == 401 else tokens.WRITE
    resp = await app.client.request(method, path, json=body, headers=headers)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert names in resp.json()["error"]
    if status == 401:
        assert resp.headers["www-authenticate"] == 'Bearer realm="predictor"'
    if status == 405:
        assert resp.headers["allow"] == names.removeprefix("takes ")


async def test_a_wrong_token_is_403(app: InProcess) -> None:
    for method, path in (
        ("POST", "/v1/models/sentiment/feedback"),
        ("GET", "/v1/users/u/sentiment"),
    ):
        resp = await app.client.request(
            method, path, json={"text": "x", "label": "positive"}, headers=tokens.bearer("w" * 20)
        )
        assert resp.status_code == 403, resp.text
        assert "w" * 20 not in resp.text


async def test_without_token_files_the_guarded_routes_are_off(tiny_model_dir: Path) -> None:
    """Off is 404 with or without a token, never open."""
    async for off in serve_in_process(settings_for(tiny_model_dir)):
        for method, path, body, names in (
            (
                "POST",
                "/v1/models/sentiment/feedback",
                {"text": "x", "label": "positive"},
                "feedback",
            ),
            ("GET", "/v1/models/sentiment/feedback", None, "feedback"),
            ("GET", "/v1/users/someone/sentiment", None, "history"),
        ):
            for headers in ({}, tokens.WRITE, tokens.READ):
                resp = await off.client.request(method, path, json=body, headers=headers)
                assert resp.status_code == 404, (path, resp.text)
                assert names in resp.json()["error"] and "no " in resp.json()["error"]
        ok = await off.client.post("/v1/models/sentiment:predict", json={"instances": ["open"]})
        assert ok.status_code == 200  # inference stays open


async def test_requests_and_errors_are_counted(app: InProcess) -> None:
    before = await _metric(app, "predictor_requests_total", protocol="v1", code="400")
    resp = await app.client.post("/v1/models/sentiment:predict", json={"instances": []})
    assert resp.status_code == 400
    assert await _metric(app, "predictor_requests_total", protocol="v1", code="400") == before + 1
    assert await _metric(app, "predictor_model_info", model="sentiment") == 1


async def test_a_client_error_leaves_the_app_serving(app: InProcess) -> None:
    bad = await app.client.post(
        "/v1/models/sentiment:predict",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert bad.status_code == 400
    ok = await app.client.post("/v1/models/sentiment:predict", json={"instances": ["fine"]})
    assert ok.status_code == 200


async def test_each_server_builds_its_own_app(app: InProcess, tiny_model_dir: Path) -> None:
    """No module-global app: another server's routes and middleware are its own, and
    KServe's global app is left untouched."""
    from kserve import model_server

    from predictor.app import Listeners, build_server

    other = build_server(settings_for(tiny_model_dir), Listeners(enable_grpc=False), "other")
    mine, theirs = app.server.rest_app(), other.rest_app()
    assert mine is not theirs
    assert not model_server.app.router.routes or all(
        not getattr(r, "path", "").endswith("/feedback") for r in model_server.app.router.routes
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=theirs), base_url="http://other"
    ) as client:  # not loaded: its own readiness, not the loaded server's
        assert (await client.get("/v2/health/ready")).status_code == 503
        early = await client.post("/v1/models/other:predict", json={"instances": ["x"]})
        assert early.status_code == 503 and early.headers["retry-after"] == "1"  # retry soon
    assert (await app.client.get("/v2/health/ready")).status_code == 200
