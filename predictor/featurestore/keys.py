"""The one place feature-store keys are derived.

A prediction key hashes model name, model version and the normalised text, so
a canary and the stable model never share entries and the same tweet sent with
different request ids (or stray whitespace) still hits. Name and version are
also kept readable in front of the hash so an operator can find or drop one
version's entries with SCAN.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

SCHEMA = "1"  # bump when the value format changes: old entries then simply miss
_SPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """NFC, whitespace runs collapsed, ends stripped.

    Case and punctuation are kept: they can change the model's answer. Whitespace
    does not, because the tokenizer splits on it.
    """
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def _digest(*parts: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "big"))  # length-prefixed: no ambiguous joins
        h.update(data)
    return h.hexdigest()


def prediction_key(model: str, version: str, text: str) -> str:
    """Key of one cached prediction."""
    digest = _digest(SCHEMA, model, version, normalise_text(text))
    return f"pred:{model}:{version}:{digest}"


def tweet_key(source: str, tweet_id: str) -> str:
    """Key of one fetched tweet (text and author), independent of any model."""
    return f"tweet:{source}:{tweet_id}"


def history_key(username: str) -> str:
    """Key of a user's prediction history; X usernames are case-insensitive."""
    return f"hist:{username.lower()}"


def feedback_key(model: str) -> str:
    """Key of a model's feedback log (one capped list for every version of it)."""
    return f"fb:{model}"
