"""The one place feature-store keys are derived.

A prediction key hashes model name, model version, numeric precision and the
normalised text, so a canary and the stable model (or an fp16 and an fp32
replica, whose scores differ in the last digits) never share entries, and the
same tweet sent with different request ids (or stray whitespace) still hits.
Name, version and precision are also kept readable in front of the hash so an
operator can find or drop one version's entries with SCAN
(`prediction_prefix`).

Redis Cluster places a key by the CRC16 of its hash tag (the first `{...}`)
or, without one, of the whole key. Predictions carry no tag, so one model's
entries spread over every shard and a batched lookup is one pipelined MGET
per node; a user's history key is tagged with the username, so everything
kept about one user lives on one slot and is read in one call. Braces in the
readable parts are replaced so no model name or version can become a tag.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

SCHEMA = "2"  # bump when the value or key format changes: old entries then simply miss
_SPACE = re.compile(r"\s+")
_BRACES = str.maketrans("{}", "__")


def normalise_text(text: str) -> str:
    """NFC, whitespace runs collapsed, ends stripped.

    Case and punctuation are kept: they can change the model's answer. Whitespace
    does not, because the tokenizer splits on it.
    """
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def digest(*parts: str) -> str:
    """Length-prefixed blake2b of `parts`: ("ab", "c") and ("a", "bc") never collide."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def _readable(part: str) -> str:
    return part.translate(_BRACES)


def prediction_prefix(model: str, version: str, precision: str | None = None) -> str:
    """Start of every prediction key of one model version (of one precision when given),
    for SCAN MATCH `<key_prefix><this>*` by operators and tools (mlops.live)."""
    head = f"pred:{_readable(model)}:{_readable(version)}:"
    return head if precision is None else f"{head}{_readable(precision)}:"


def prediction_key(model: str, version: str, precision: str, text: str) -> str:
    """Key of one cached prediction."""
    h = digest(SCHEMA, model, version, precision, normalise_text(text))
    return prediction_prefix(model, version, precision) + h


def tweet_key(source: str, tweet_id: str) -> str:
    """Key of one fetched tweet (text and author), independent of any model."""
    return f"tweet:{_readable(source)}:{_readable(tweet_id)}"


def history_key(username: str) -> str:
    """Key of a user's prediction history, hash-tagged by the user (one slot per user);
    X usernames are case-insensitive."""
    return f"hist:{{{_readable(username.lower())}}}"


def feedback_key(model: str) -> str:
    """Key of a model's feedback log (one capped list for every version of it)."""
    return f"fb:{_readable(model)}"
