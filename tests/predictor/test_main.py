"""The command line: KServe's flags, our served-name default, one worker only."""

from __future__ import annotations

import pytest

from predictor import DEFAULT_MODEL_NAME
from predictor.__main__ import parse_args


def test_served_name_defaults_to_the_one_source() -> None:
    assert parse_args([]).model_name == DEFAULT_MODEL_NAME
    assert parse_args(["--model_name", "roberta"]).model_name == "roberta"


def test_more_than_one_worker_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["--workers", "2"])
    assert exc.value.code == 2
    assert "--workers must be 1" in capsys.readouterr().err


def test_local_runs_bind_loopback_and_all_interfaces_is_explicit(tmp_path: object) -> None:
    """`make serve` must not expose an unauthenticated API to a laptop's network: both
    listeners bind loopback unless --bind_address says otherwise (the image and chart do)."""
    from pathlib import Path

    from predictor.app import Listeners, build_server
    from predictor.serving.server import grpc_host
    from tests.fixtures.inprocess import settings_for

    assert parse_args([]).bind_address == "127.0.0.1"
    assert parse_args(["--bind_address", "0.0.0.0"]).bind_address == "0.0.0.0"
    server = build_server(settings_for(Path(str(tmp_path))), Listeners(enable_grpc=False))
    assert server._rest().config.host == "127.0.0.1"
    assert grpc_host("127.0.0.1") == "127.0.0.1"
    assert grpc_host("0.0.0.0") == "[::]" and grpc_host("::1") == "[::1]"
