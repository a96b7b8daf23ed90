"""Every hostile request of the corpus, on every wire, gets a client-error answer in JSON
that names the problem, and the server stays alive and ready (Triton's L0_input_validation
and L0_http_fuzz are the model: every hostile case is a test)."""

from __future__ import annotations

import pytest

from tests.fixtures.predictor_proc import PredictorProcess
from tests.reliability.conftest import assert_alive_and_ready
from tests.reliability.corpus import Case, Target, cases, check

CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_request_is_a_clear_client_error(
    case: Case, target: Target, hostile: PredictorProcess
) -> None:
    answer = case.send(target)
    assert check(case, answer) == [], f"{case.id}: {answer}"
    assert_alive_and_ready(hostile)


def test_the_corpus_covers_every_wire() -> None:
    wires = {c.wire for c in CASES}
    assert wires == {"v1", "v2-json", "v2-binary", "http", "grpc"}
    assert sum(c.wire == "v2-binary" for c in CASES) >= 21  # the 21 malformed cases
    assert len({c.id for c in CASES}) == len(CASES)
