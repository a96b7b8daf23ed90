"""Fuzzing: schema-driven (schemathesis against the server's own /openapi.json) and
property-based (hypothesis: v1 and v2 bodies full of lone surrogates and control
characters). Whatever comes in, the answer is never a server error: a 2xx, a 4xx with a
JSON `error`, or the documented 503.

The budget in `make test` is small (a few examples per operation, seconds in all);
`make reliability` runs the same properties with FUZZ_EXAMPLES=500.
"""

from __future__ import annotations

import json
import os

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.predictor_proc import PredictorProcess
from tests.reliability.conftest import assert_alive_and_ready
from tests.reliability.corpus import server_error

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def check_answer(status: int, content_type: str, body: bytes, what: str) -> None:
    assert not server_error(status), f"{what}: {status} {body[:500]!r}"
    if status >= 400:
        assert content_type.startswith("application/json"), f"{what}: {content_type}"
        assert json.loads(body).get("error"), f"{what}: no error message in {body[:300]!r}"


# --- schema-driven ------------------------------------------------------------------------
def test_schema_fuzz_never_a_server_error(hostile: PredictorProcess) -> None:
    """Every operation of /openapi.json (KServe's v1, v2, health, metadata and repository
    routes and ours), with bodies, paths and queries generated from the schema, both
    valid and schema-violating ones."""
    api = schemathesis.openapi.from_url(f"{hostile.url}/openapi.json")
    labels = []
    for result in api.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err fails the test here
        labels.append(operation.label)

        @given(case=operation.as_strategy())
        @FUZZ
        def run(case: schemathesis.Case) -> None:
            response = case.call(base_url=hostile.url, timeout=30)
            what = f"{case.method} {case.formatted_path}"
            ctype = response.headers.get("content-type") or [""]
            check_answer(response.status_code, str(ctype[0]), response.content, what)

        run()
    assert "POST /v2/models/{model_name}/infer" in labels, labels


# --- property-based ----------------------------------------------------------------------
# Text biased towards what breaks decoders: lone surrogates, C0/C1 controls, NUL, BOMs.
HOSTILE_CHARS = st.one_of(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),  # lone surrogates
    st.characters(max_codepoint=0x1F),
    st.characters(min_codepoint=0x7F, max_codepoint=0x9F),
    st.sampled_from(["\ufeff", "\u202e", "\u0000", "\uffff", "\U0010ffff"]),
    st.characters(),
)
HOSTILE_TEXT = st.text(HOSTILE_CHARS, max_size=40)
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), HOSTILE_TEXT)
JSON_ANY = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(HOSTILE_TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)


def _encode(body: object) -> bytes:
    """JSON as Python writes it (lone surrogates escaped as \\udXXX, which is what a
    hostile client sends), so the server's parser meets them."""
    return json.dumps(body).encode()


def _post(server: PredictorProcess, path: str, body: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.url}{path}",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )


V1_INSTANCE = st.one_of(
    HOSTILE_TEXT,
    st.fixed_dictionaries({"text": st.one_of(HOSTILE_TEXT, JSON_ANY)}),
    st.fixed_dictionaries({"tweet_url": HOSTILE_TEXT}),
    JSON_ANY,
)


@given(
    body=st.one_of(
        st.fixed_dictionaries({"instances": st.lists(V1_INSTANCE, max_size=6)}),
        JSON_ANY,
    )
)
@FUZZ
def test_v1_bodies_never_a_server_error(body: object, hostile: PredictorProcess) -> None:
    resp = _post(hostile, "/v1/models/sentiment:predict", _encode(body))
    check_answer(resp.status_code, resp.headers.get("content-type", ""), resp.content, "v1")


V2_TENSOR = st.fixed_dictionaries(
    {
        "name": st.one_of(st.just("text"), HOSTILE_TEXT),
        "datatype": st.one_of(st.just("BYTES"), HOSTILE_TEXT),
        "shape": st.lists(st.integers(min_value=-3, max_value=2**40), max_size=3),
        "data": st.one_of(st.lists(st.one_of(HOSTILE_TEXT, JSON_LEAF), max_size=6), JSON_ANY),
    },
    optional={"parameters": JSON_ANY},
)


@given(
    body=st.fixed_dictionaries(
        {"inputs": st.lists(V2_TENSOR, max_size=3)},
        optional={
            "id": st.one_of(HOSTILE_TEXT, JSON_LEAF),
            "outputs": st.lists(st.fixed_dictionaries({"name": HOSTILE_TEXT}), max_size=3),
            "parameters": JSON_ANY,
        },
    )
)
@FUZZ
def test_v2_bodies_never_a_server_error(body: object, hostile: PredictorProcess) -> None:
    resp = _post(hostile, "/v2/models/sentiment/infer", _encode(body))
    check_answer(resp.status_code, resp.headers.get("content-type", ""), resp.content, "v2")


def test_alive_and_ready_after_the_fuzz(hostile: PredictorProcess) -> None:
    assert_alive_and_ready(hostile)  # the package fixture checks the log and the counts
