"""Feedback records -> training rows, and the file and HTTP sources."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mlops.feedback_data import FeedbackError, read_records, training_rows
from predictor.featurestore.feedback_log import FeedbackRecord, text_hash

LABELS = ["negative", "neutral", "positive"]


def rec(text: str, label: str, t: float) -> FeedbackRecord:
    return FeedbackRecord(text_hash(text), text, label, "v1", "neutral", 0.5, t)


def test_the_newest_label_per_text_wins_and_the_order_is_stable() -> None:
    now = time.time()
    records = [rec("a", "positive", now - 3), rec("b", "negative", now - 2),
               rec("a", "negative", now - 1), rec("c", "unknown", now)]  # fmt: skip
    rows = training_rows(records, LABELS)
    assert sorted(map(tuple, (r.values() for r in rows.rows))) == [
        ("a", "negative"), ("b", "negative")]  # fmt: skip
    assert training_rows(list(reversed(records[:2])) + records[2:], LABELS).sha256 == rows.sha256


def test_a_file_source_skips_expired_and_broken_lines(tmp_path: Path) -> None:
    now = time.time()
    path = tmp_path / "fb.jsonl"
    path.write_bytes(b"\n".join([rec("old", "positive", now - 500).encode(), b"not json",
                                 rec("new", "negative", now).encode()]))  # fmt: skip
    assert [r.text for r in read_records(str(path), "sentiment", ttl_s=100)] == ["new"]


def test_an_unreachable_source_is_a_feedback_error(tmp_path: Path) -> None:
    with pytest.raises(FeedbackError, match="feedback source"):
        read_records(str(tmp_path / "missing.jsonl"), "sentiment", 100)
    with pytest.raises(FeedbackError, match="feedback source"):
        read_records("http://127.0.0.1:9", "sentiment", 100)
