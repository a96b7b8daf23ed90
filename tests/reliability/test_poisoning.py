"""One request's bad text never fails another request (issue 10, item 1).

With the prediction cache off every text reaches the batcher; poison requests
interleaved with innocent ones while the batcher is busy would share their
forward passes. Only the poison requests fail, each with a 400 naming the text.
"""

from __future__ import annotations

import asyncio

import httpx

from tests.fixtures.predictor_proc import PredictorProcess
from tests.reliability.conftest import assert_alive_and_ready

POISON = (
    b'{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["poison \\ud800 pill"]}]}'
)


def innocent(n: int) -> dict[str, object]:
    return {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [f"fine {n}"]}]}


async def test_poison_texts_fail_alone_among_innocent_requests(hostile: PredictorProcess) -> None:
    limits = httpx.Limits(max_connections=32)  # under the package server's cap of 64
    async with httpx.AsyncClient(base_url=hostile.url, timeout=60, limits=limits) as client:

        async def send(n: int) -> tuple[str, httpx.Response]:
            if n % 12 == 5:
                return "poison", await client.post(
                    "/v2/models/sentiment/infer",
                    content=POISON,
                    headers={"content-type": "application/json"},
                )
            return "innocent", await client.post("/v2/models/sentiment/infer", json=innocent(n))

        answers = await asyncio.gather(*(send(n) for n in range(130)))
    poisons = [r for kind, r in answers if kind == "poison"]
    innocents = [r for kind, r in answers if kind == "innocent"]
    assert len(poisons) == 11 and len(innocents) == 119
    assert [r.status_code for r in innocents] == [200] * len(innocents)
    for r in poisons:
        assert r.status_code == 400, r.text
        assert "input 'text'[0] is not valid Unicode" in r.json()["error"]
    assert_alive_and_ready(hostile)
