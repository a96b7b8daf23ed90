"""The profile table: py-spy's raw stacks summed per thread and component, innermost wins."""

from __future__ import annotations

from loadtest.spy import components, table

SITE = "/venv/lib/python3.11/site-packages"
RAW = [
    # the engine thread in the forward pass (a C call from Engine.infer) and in the tokenizer
    "thread (11): engine_0;Thread.run (/usr/lib/python3.11/threading.py:982);"
    "Engine.infer (/repo/predictor/engine.py:270) 30",
    "thread (11): engine_0;Engine.infer (/repo/predictor/engine.py:268);"
    "encode (/repo/predictor/tokenization.py:44) 10",
    # a metric observed from the edge counts as metrics; the edge alone as edge
    f"thread (7): MainThread;run (/repo/predictor/serving/server.py:311);"
    f"Edge.__call__ (/repo/predictor/serving/edge.py:80);"
    f"Histogram.observe ({SITE}/prometheus_client/metrics.py:600) 6",
    "thread (7): MainThread;Edge.__call__ (/repo/predictor/serving/edge.py:81) 2",
    f"thread (7): MainThread;Route.handle ({SITE}/starlette/routing.py:288) 1",
    "thread (7): MainThread;Logger.info (/usr/lib/python3.11/logging/__init__.py:1489) 1",
    "thread (7): MainThread;<module> (/tmp/x.py:1) 1",
    "not a py-spy line",
]


def test_samples_go_to_the_innermost_named_component_per_thread() -> None:
    got = components(RAW)
    assert set(got) == {"engine_0", "MainThread"}  # tids dropped, names kept
    assert got["engine_0"] == {"torch forward": 30, "tokenizer": 10}
    main = got["MainThread"]
    assert main["metrics"] == 6 and main["edge"] == 2
    assert main["FastAPI/Starlette"] == 1 and main["logging"] == 1 and main["other"] == 1


def test_table_gives_shares_and_milliseconds_per_request() -> None:
    rows = table(components(RAW), rate_hz=100, requests=20)
    first = rows[0]  # the busiest thread first, its biggest component first
    assert first[:4] == ["engine_0", "torch forward", "30", "75.0%"]
    assert first[4] == "15.000"  # 30 samples at 100 Hz = 300 ms over 20 requests
    assert table(components(RAW), rate_hz=100)[0][4] == "-"  # no request count, no per-request
