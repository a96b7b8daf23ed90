"""Keys: one derivation, model and version always in it."""

from __future__ import annotations

from predictor.featurestore import keys


def test_version_and_model_change_the_key() -> None:
    stable = keys.prediction_key("sentiment", "v1", "good day")
    assert stable != keys.prediction_key("sentiment", "v2", "good day")
    assert stable != keys.prediction_key("other", "v1", "good day")
    assert stable != keys.prediction_key("sentiment", "v1", "good day!")
    assert stable.startswith("pred:sentiment:v1:")


def test_whitespace_and_unicode_forms_share_a_key() -> None:
    base = keys.prediction_key("m", "1", "café au lait")
    assert keys.prediction_key("m", "1", "  café \n au\tlait ") == base
    assert keys.prediction_key("m", "1", "cafe\u0301 au lait") == base  # NFD e + accent
    assert keys.prediction_key("m", "1", "Café au lait") != base  # case can change the answer


def test_parts_cannot_run_into_each_other() -> None:
    assert keys.prediction_key("ab", "c", "x") != keys.prediction_key("a", "bc", "x")


def test_history_key_ignores_username_case() -> None:
    assert keys.history_key("Alice") == keys.history_key("alice")
    assert keys.tweet_key("x", "1") != keys.tweet_key("x", "2")
