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


def by(writer: str, text: str, label: str, t: float) -> FeedbackRecord:
    return FeedbackRecord(text_hash(text), text, label, "v1", "neutral", 0.5, t, writer=writer)


def test_one_label_per_text_per_writer_however_often_it_is_posted() -> None:
    """A writer posting the same text 50 times with one label cannot outvote two writers
    who gave another: each writer's newest label counts once."""
    flood = [by("w-attacker", "the match", "negative", n) for n in range(50)]
    honest = [by("w-a", "the match", "positive", 60), by("w-b", "the match", "positive", 61)]
    rows = training_rows(flood + honest, LABELS)
    assert rows.rows == [{"text": "the match", "label": "positive"}]
    assert (rows.records, rows.reposts, rows.writers) == (52, 49, 3)


def test_a_repost_replaces_the_writers_label_and_a_tie_goes_to_the_newest() -> None:
    records = [by("w-a", "x", "positive", 1), by("w-a", "x", "negative", 2),
               by("w-b", "x", "neutral", 3)]  # fmt: skip
    # w-a's label is now negative (replaced), w-b's neutral: a tie, the newest wins
    assert training_rows(records, LABELS).rows == [{"text": "x", "label": "neutral"}]
    assert training_rows(records[:2], LABELS).rows == [{"text": "x", "label": "negative"}]


def test_the_http_source_sends_the_reader_token(tmp_path: Path) -> None:
    """Against a real HTTP server that answers only with the right bearer token."""
    import http.server
    import threading

    token = "reader-token-for-the-cycle-123"
    line = rec("from http", "positive", time.time()).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.headers.get("Authorization") == f"Bearer {token}"
            body = line + b"\n" if ok else b'{"error": "needs a reader token"}'
            self.send_response(200 if ok else 401)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        (tmp_path / "token").write_text(token + "\n")
        got = read_records(url, "sentiment", 100, token_file=tmp_path / "token")
        assert [r.text for r in got] == ["from http"]
        with pytest.raises(FeedbackError, match="401"):
            read_records(url, "sentiment", 100)
    finally:
        server.shutdown()
