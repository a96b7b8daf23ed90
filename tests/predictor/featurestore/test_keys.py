"""Keys: one derivation, model and version always in it."""

from __future__ import annotations

from redis.crc import key_slot

from predictor.featurestore import keys


def _hash(key: str) -> str:
    return key.rsplit(":", 1)[1]


def test_model_version_precision_and_text_change_the_key() -> None:
    stable = keys.prediction_key("sentiment", "v1", "fp32", "good day")
    others = [
        keys.prediction_key("sentiment", "v2", "fp32", "good day"),
        keys.prediction_key("other", "v1", "fp32", "good day"),
        keys.prediction_key("sentiment", "v1", "fp16", "good day"),
        keys.prediction_key("sentiment", "v1", "bf16", "good day"),
        keys.prediction_key("sentiment", "v1", "fp32", "good day!"),
    ]
    # the hash itself covers every part, not only the readable prefix in front of it
    assert len({_hash(k) for k in [stable, *others]}) == 6
    assert stable.startswith(keys.prediction_prefix("sentiment", "v1", "fp32"))
    assert stable.startswith(keys.prediction_prefix("sentiment", "v1"))
    assert not others[0].startswith(keys.prediction_prefix("sentiment", "v1"))


def test_whitespace_and_unicode_forms_share_a_key() -> None:
    base = keys.prediction_key("m", "1", "fp32", "café au lait")
    assert keys.prediction_key("m", "1", "fp32", "  café \n au\tlait ") == base
    assert keys.prediction_key("m", "1", "fp32", "cafe\u0301 au lait") == base  # NFD e + accent
    assert keys.prediction_key("m", "1", "fp32", "Café au lait") != base  # case can matter


def test_parts_cannot_run_into_each_other() -> None:
    # the readable prefix differs anyway; the digest alone must keep the parts apart
    assert keys.digest("ab", "c", "x") != keys.digest("a", "bc", "x")
    assert keys.digest("a", "") != keys.digest("", "a")
    assert keys.digest("a", "b") == keys.digest("a", "b")


def test_history_key_ignores_username_case_and_is_one_slot_per_user() -> None:
    assert keys.history_key("Alice") == keys.history_key("alice")
    assert keys.history_key("alice") != keys.history_key("bob")
    prefix = "tss:"  # the backend puts key_prefix in front; the tag must survive it
    assert key_slot((prefix + keys.history_key("Alice")).encode()) == key_slot(b"alice")
    assert keys.tweet_key("x", "1") != keys.tweet_key("x", "2")


def test_predictions_spread_over_slots_and_no_name_becomes_a_hash_tag() -> None:
    ks = [keys.prediction_key("m", "v", "fp32", f"text {n}") for n in range(64)]
    assert len({key_slot(k.encode()) for k in ks}) > 32, "one shard would take every lookup"
    tagged = keys.prediction_key("{m}", "v{1}", "fp32", "x")
    assert "{" not in tagged and "}" not in tagged
