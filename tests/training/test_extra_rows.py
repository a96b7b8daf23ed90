"""Extra labelled rows (production feedback) join the training split only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training import data


def corpus(texts: list[str], labels: list[int]) -> data.Corpus:
    return data.Corpus(texts, np.array(labels, dtype=np.int64), "sha", 0)


def write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_rows_are_read_with_whitespace_collapsed(tmp_path: Path) -> None:
    given = [{"text": "  so   good ", "label": "positive"}, {"text": "meh", "label": "neutral"}]
    rows = data.load_extra_rows(write(tmp_path / "x.jsonl", list(given)))
    assert rows.texts == ["so good", "meh"]
    assert rows.labels.tolist() == [data.LABELS.index("positive"), data.LABELS.index("neutral")]
    assert len(rows.sha256) == 64


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"text": "x", "label": "ecstatic"}, "not in"),
        ({"text": "   ", "label": "positive"}, "empty text"),
        ({"label": "positive"}, "not a {text, label}"),
        ("just a string", "not a {text, label}"),
    ],
)
def test_a_bad_row_names_its_line(tmp_path: Path, row: object, problem: str) -> None:
    path = write(tmp_path / "x.jsonl", [{"text": "fine", "label": "neutral"}, row])
    with pytest.raises(data.DataError, match=f"x.jsonl:2: .*{problem}"):
        data.load_extra_rows(path)


def test_weight_repeats_rows_and_evaluation_texts_are_left_out() -> None:
    train = corpus(["a", "b"], [0, 1])
    extra = data.ExtraRows(["new", "held out", "b"], np.array([2, 2, 0]), "sha")
    out, left_out, capped = data.add_training_rows(train, extra, 3, exclude={"held out"})
    assert (left_out, capped) == (1, 0)
    assert out.texts == ["a", "b", "new", "b", "new", "b", "new", "b"]
    assert out.labels.tolist() == [0, 1, 2, 0, 2, 0, 2, 0]
    assert out.sha256 == "sha"  # the corpus hash stays the base corpus's: held-out sets rebuild


def test_extra_rows_are_capped_at_a_share_of_the_training_split() -> None:
    """100 base rows, 50 feedback rows at weight 2, at most 20 %: 100 * 0.2 / (2 * 0.8) = 12
    rows kept (24 weighted of 124, under a fifth), a seeded sample of them."""
    train = corpus([f"base {n}" for n in range(100)], [n % 3 for n in range(100)])
    extra = data.ExtraRows([f"fb {n}" for n in range(50)], np.array([2] * 50), "sha")
    out, left_out, capped = data.add_training_rows(train, extra, 2, set(), 0.2, seed=7)
    assert (left_out, capped) == (0, 38)
    added = out.texts[100:]
    assert len(added) == 24 and len(set(added)) == 12
    assert added.count("fb 0") in (0, 2)
    assert (len(out.texts) - 100) / len(out.texts) <= 0.2
    again, *_ = data.add_training_rows(train, extra, 2, set(), 0.2, seed=7)
    assert again.texts == out.texts  # the same seed keeps the same rows
    other, *_ = data.add_training_rows(train, extra, 2, set(), 0.2, seed=8)
    assert set(other.texts[100:]) != set(added)
    whole, _, none_capped = data.add_training_rows(train, extra, 2, set(), 1.0)
    assert none_capped == 0 and len(whole.texts) == 200
