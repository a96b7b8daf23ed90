"""Token files and the credential check of the guarded routes (predictor/routes/auth.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from predictor.errors import Forbidden, Unauthorized
from predictor.routes.auth import (
    ApiTokenSettings,
    Credential,
    RouteTokens,
    TokenFileError,
    writer_id,
)

GOOD = "a-long-enough-token-1234"
OTHER = "another-long-token-5678"


def credential(tmp_path: Path, text: str) -> Credential:
    path = tmp_path / "tokens"
    path.write_text(text)
    return Credential.from_file("writer", path)


def test_each_line_is_a_token_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    c = credential(tmp_path, f"\n{GOOD}\n\n  {OTHER}  \n")
    assert c.check(f"Bearer {GOOD}") == writer_id(GOOD.encode())
    assert c.check(f"bearer   {OTHER}") == writer_id(OTHER.encode())
    assert writer_id(GOOD.encode()) != writer_id(OTHER.encode())
    assert GOOD not in writer_id(GOOD.encode())


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", f"Basic {GOOD}", GOOD])
def test_no_bearer_token_is_401(tmp_path: Path, header: str | None) -> None:
    with pytest.raises(Unauthorized) as err:
        credential(tmp_path, GOOD).check(header)
    assert err.value.headers == {"WWW-Authenticate": 'Bearer realm="predictor"'}


@pytest.mark.parametrize("given", [GOOD[:-1], GOOD + "x", GOOD.upper(), OTHER, "\udcff" * 20])
def test_a_wrong_token_is_403_and_never_quoted(tmp_path: Path, given: str) -> None:
    with pytest.raises(Forbidden) as err:
        credential(tmp_path, GOOD).check(f"Bearer {given}")
    assert given not in err.value.message and GOOD not in err.value.message


@pytest.mark.parametrize(
    ("text", "problem"),
    [("", "holds no token"), ("\n \n", "holds no token"), ("short\n", "shorter than 16")],
)
def test_an_unusable_token_file_stops_the_start(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(TokenFileError, match=problem) as err:
        credential(tmp_path, text)
    assert "short" not in str(err.value).replace("shorter", "")  # the token is not quoted


def test_a_missing_token_file_stops_the_start(tmp_path: Path) -> None:
    settings = ApiTokenSettings(reader_tokens_file=tmp_path / "absent")
    with pytest.raises(TokenFileError, match=r"reader token file .*absent"):
        RouteTokens.load(settings)


def test_unset_files_are_routes_off(tmp_path: Path) -> None:
    tokens = RouteTokens.load(
        ApiTokenSettings(feedback_writer_tokens_file=None, reader_tokens_file=None)
    )
    assert tokens.writers is None and tokens.readers is None
