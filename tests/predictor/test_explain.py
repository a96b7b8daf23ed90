"""`:explain`: occlusion through the shared batcher, on a real predictor process.

The served model is constructed (tests/fixtures/fake_models.py): neutral unless
"love" (which flips it to positive) or "nice" (a small push) is present, so
which word matters is known before asking.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from harness.inprocess import InProcessPredictor
from harness.scrape import sample_sum
from harness.servers import Predictor
from predictor.errors import BadInput
from predictor.explain import ExplainSettings, check_bounds, occlusions, split_words
from tests.fixtures.fake_models import write_keyword_model
from tests.fixtures.predictor_proc import REPO

BATCH_CAP = 4
MAX_WORDS = 12
MAX_TEXTS = 2


@pytest.fixture(scope="module")
def server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessPredictor]:
    base = tmp_path_factory.mktemp("explain")
    model = write_keyword_model(tiny_model_dir, base / "model", {"love": 3.0, "nice": 0.5})
    proc = (
        InProcessPredictor(
            model,
            base / "predictor.log",
            env={
                "PREDICTOR_MAX_BATCH_SIZE": str(BATCH_CAP),
                "PREDICTOR_EXPLAIN_MAX_WORDS": str(MAX_WORDS),
                "PREDICTOR_EXPLAIN_MAX_TEXTS": str(MAX_TEXTS),
            },
        )
        .start()
        .wait_ready(240)  # minutes on a busy 2-core machine
    )
    yield proc
    proc.stop()


def explain(server: Predictor, instances: list[object]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/models/sentiment:explain", json={"instances": instances}, timeout=60
    )


def test_words_and_occlusions() -> None:
    words = split_words("  I  love\tit ")
    assert words == ["I", "love", "it"]
    assert occlusions(words) == ["love it", "I it", "I love"]


def test_bounds_name_the_cap_and_the_setting() -> None:
    limits = ExplainSettings.model_construct(explain_max_words=3, explain_max_texts=2)
    check_bounds(["one two three", "a"], limits)
    with pytest.raises(BadInput, match=r"instances\[1\] has 4 words.*PREDICTOR_EXPLAIN_MAX_WORDS"):
        check_bounds(["ok", "one two three four"], limits)
    with pytest.raises(BadInput, match=r"at most 2 instances.*PREDICTOR_EXPLAIN_MAX_TEXTS"):
        check_bounds(["a", "b", "c"], limits)


def test_one_contribution_per_word_and_the_flipping_word_leads(server: Predictor) -> None:
    texts = ["I really love this nice phone", "the meeting is at noon"]
    r = explain(server, [texts[0], {"text": texts[1]}])
    assert r.status_code == 200, r.text
    body = r.json()
    predicted = httpx.post(
        f"{server.url}/v1/models/sentiment:predict", json={"instances": texts}, timeout=30
    ).json()["predictions"]
    assert body["predictions"] == predicted  # the same answer :predict gives
    first, second = body["explanations"]
    for text, e in zip(texts, body["explanations"], strict=True):
        assert e["words"] == text.split()
        assert len(e["contributions"]) == len(e["words"])
        assert e["method"] == "leave-one-word-out occlusion"
    assert first["label"] == "positive" and second["label"] == "neutral"
    c = dict(zip(first["words"], first["contributions"], strict=True))
    assert max(c, key=lambda w: c[w]) == "love"  # removing it flips positive -> neutral
    assert c["love"] > 0.5 > c["nice"] > 0
    assert all(c[w] == 0 for w in ("I", "really", "this", "phone"))  # the model ignores them
    assert np.allclose(second["contributions"], 0)  # no keyword: nothing moves the label


def test_occluded_variants_go_through_the_batcher(server: Predictor) -> None:
    text = "one two three four five six seven eight nine ten"  # 10 words -> 11 texts
    before_n = sample_sum(server.url, "predictor_batch_size_count")
    before_texts = sample_sum(server.url, "predictor_batch_size_sum")
    capped_before = sample_sum(server.url, "predictor_batch_size_bucket", le=f"{BATCH_CAP}.0")
    r = explain(server, [text])
    assert r.status_code == 200, r.text
    batches = sample_sum(server.url, "predictor_batch_size_count") - before_n
    texts = sample_sum(server.url, "predictor_batch_size_sum") - before_texts
    capped = sample_sum(server.url, "predictor_batch_size_bucket", le=f"{BATCH_CAP}.0")
    assert texts == 11  # the text and its 10 occlusions, all through the batcher
    assert batches == 3  # coalesced: 4 + 4 + 3 under a cap of 4, not 11 forward passes
    assert capped - capped_before == batches  # no batch above the cap


def test_over_the_caps_is_a_400_that_says_so(server: Predictor) -> None:
    long_text = " ".join(["word"] * (MAX_WORDS + 1))
    r = explain(server, ["fine", long_text])
    assert r.status_code == 400
    assert "instances[1] has 13 words" in r.json()["error"]
    r = explain(server, ["a", "b", "c"])
    assert r.status_code == 400
    assert "PREDICTOR_EXPLAIN_MAX_TEXTS" in r.json()["error"]
    assert explain(server, []).status_code == 400  # decoded like :predict


def test_explain_has_its_own_series_and_access_line(server: Predictor) -> None:
    ok = {"code": "200"}
    explains = sample_sum(server.url, "predictor_explain_requests_total", **ok)
    predicts = sample_sum(server.url, "predictor_requests_total")
    assert explain(server, ["I love it"]).status_code == 200
    assert sample_sum(server.url, "predictor_explain_requests_total", **ok) == explains + 1
    assert sample_sum(server.url, "predictor_requests_total") == predicts  # not a prediction
    assert sample_sum(server.url, "predictor_explain_request_duration_seconds_count") >= 1
    assert sample_sum(server.url, "predictor_explained_words_sum") >= 3
    lines = server.logs().splitlines()
    assert any("POST /v1/models/sentiment:explain 200" in line for line in lines)


def test_cli_renders_a_png(server: Predictor, tmp_path: Path) -> None:
    out = tmp_path / "why.png"
    done = subprocess.run(
        [sys.executable, "-m", "tools.explain_png", "I really love this nice phone",
         "--url", server.url, "--png", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"love"' in done.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
