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
