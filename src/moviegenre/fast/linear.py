"""The ``linear`` kind compiled to plain arrays: features, then one matrix product.

The ``linear`` kind is a ColumnTransformer of TF-IDF vectorizers (plot words, plot character
n-grams, title words) and a one-hot decade, under one logistic regression per genre. Everything
after the vectorizers is linear, so the 24 regressions collapse into one coefficient matrix
``W`` (features x genres) and one intercept ``b``: one sparse-by-dense product scores every
genre. :class:`FastLinear` rebuilds the pipeline's features exactly (same tokens, counts,
TF-IDF weights and L2 norms, bit for bit) without scikit-learn's per-call validation, without a
DataFrame, and with the character n-grams of each distinct word looked up once and cached.

Needs numpy alone (scipy only for a batch's sparse matrix). :mod:`moviegenre.kinds.compile`
builds it from a fitted pipeline; :mod:`moviegenre.fast.bundle` stores it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import filterfalse, repeat
from typing import Any

import numpy as np

from moviegenre.fast.maths import expit

#: Distinct words whose character n-gram columns are cached per vectorizer (a few hundred
#: bytes each; the cache is emptied when full, so it stays under about 30 MB).
WORD_CACHE_SIZE = 100_000

_EMPTY_IDS = np.zeros(0, dtype=np.int64)
_EMPTY_VALUES = np.zeros(0, dtype=np.float64)


# --- vectorizers ---------------------------------------------------------------------------


@dataclass(eq=False)
class TfidfText:
    """One fitted ``TfidfVectorizer`` (word or ``char_wb`` analyzer), as plain data."""

    analyzer: str
    terms: list[str]
    idf: np.ndarray | None
    ngram_range: tuple[int, int]
    lowercase: bool = True
    token_pattern: str = r"(?u)\b\w\w+\b"
    stop_words: list[str] | None = None
    sublinear_tf: bool = False
    norm: str | None = "l2"
    vocabulary: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.vocabulary = dict(zip(self.terms, range(len(self.terms)), strict=True))
        self._stop = frozenset(self.stop_words) if self.stop_words else None
        self._findall = re.compile(self.token_pattern).findall
        self._word_cache: dict[str, np.ndarray] = {}

    @property
    def width(self) -> int:
        return len(self.terms)

    def config(self) -> dict[str, Any]:
        return {
            "analyzer": self.analyzer,
            "ngram_range": list(self.ngram_range),
            "lowercase": self.lowercase,
            "token_pattern": self.token_pattern,
            "stop_words": self.stop_words,
            "sublinear_tf": self.sublinear_tf,
            "norm": self.norm,
            "use_idf": self.idf is not None,
        }

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Sorted column indices and TF-IDF values of ``text``: one row of ``transform``."""
        if not text:
            return _EMPTY_IDS, _EMPTY_VALUES
        if self.lowercase:
            text = text.lower()
        if self.analyzer == "word":
            ids, counts = self._word_counts(text)
        else:
            ids, counts = self._char_wb_counts(text)
        if not ids.size:
            return _EMPTY_IDS, _EMPTY_VALUES
        # The same operations, in the same order, as TfidfTransformer.transform and
        # sklearn.preprocessing.normalize, so the values are equal bit for bit.
        values = counts
        if self.sublinear_tf:
            np.log(values, out=values)
            values += 1.0
        if self.idf is not None:
            values *= self.idf[ids]
        if self.norm == "l2":
            # normalize sums the squares one by one, left to right: cumsum does too.
            total = float(np.cumsum(values * values)[-1])
            if total != 0.0:
                values /= math.sqrt(total)
        return ids, values

    def _word_counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        tokens = self._findall(text)
        if self._stop is not None:
            tokens = list(filterfalse(self._stop.__contains__, tokens))
        grams = _word_ngrams(tokens, self.ngram_range)
        ids = np.fromiter(map(self.vocabulary.get, grams, repeat(-1)), dtype=np.int64, count=len(grams))
        ids = ids[ids >= 0]
        if not ids.size:
            return _EMPTY_IDS, _EMPTY_VALUES
        unique, counts = np.unique(ids, return_counts=True)
        return unique, counts.astype(np.float64)

    def _char_wb_counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        # A document's char_wb n-grams are those of its whitespace-separated words taken one
        # by one, so each distinct word is analysed once and its n-grams' columns cached.
        # (scikit-learn first turns whitespace runs into one space; split() alone splits the
        # same way, on the same whitespace characters.)
        words = text.split()
        if not words:
            return _EMPTY_IDS, _EMPTY_VALUES
        try:
            entries = list(map(self._word_cache.__getitem__, words))
        except KeyError:
            entries = self._analyse_words(words)
        ids = np.concatenate(entries)
        if not ids.size:
            return _EMPTY_IDS, _EMPTY_VALUES
        unique, counts = np.unique(ids, return_counts=True)
        return unique, counts.astype(np.float64)

    def _analyse_words(self, words: list[str]) -> list[np.ndarray]:
        cache = self._word_cache
        known = {word: cache.get(word) for word in words}
        fresh = {word: self._char_wb_word(word) for word, entry in known.items() if entry is None}
        if len(cache) + len(fresh) > WORD_CACHE_SIZE:
            cache.clear()
        cache.update(fresh)
        known.update(fresh)
        return [known[word] for word in words]

    def _char_wb_word(self, word: str) -> np.ndarray:
        """scikit-learn's ``_char_wb_ngrams`` for one word, looked up in the vocabulary: the
        columns of its n-grams, sorted, one entry per occurrence."""
        get = self.vocabulary.get
        min_n, max_n = self.ngram_range
        w = " " + word + " "
        w_len = len(w)
        ids = []
        for n in range(min_n, max_n + 1):
            offset = 0
            ids.append(get(w[offset : offset + n], -1))
            while offset + n < w_len:
                offset += 1
                ids.append(get(w[offset : offset + n], -1))
            if offset == 0:  # a word shorter than n is counted once
                break
        found = np.array(ids, dtype=np.int64)
        return np.sort(found[found >= 0])


def _word_ngrams(tokens: list[str], ngram_range: tuple[int, int]) -> list[str]:
    """The n-grams scikit-learn's ``_word_ngrams`` makes of ``tokens``, in the same order."""
    min_n, max_n = ngram_range
    grams = list(tokens) if min_n == 1 else []
    for n in range(max(min_n, 2), max_n + 1):
        grams += map(" ".join, zip(*(tokens[i:] for i in range(n)), strict=False))  # n at a time
    return grams


@dataclass(eq=False)
class DecadeOneHot:
    """``decade_of`` then a ``OneHotEncoder(handle_unknown="ignore")``, as plain data."""

    categories: list[str]

    def __post_init__(self) -> None:
        self._index = {label: i for i, label in enumerate(self.categories)}

    @property
    def width(self) -> int:
        return len(self.categories)

    def config(self) -> dict[str, Any]:
        return {"analyzer": "decade", "categories": self.categories}

    def features(self, year: float) -> tuple[np.ndarray, np.ndarray]:
        # The label moviegenre.kinds.text.decade_of gives; an unseen decade has no feature.
        label = "unknown" if math.isnan(year) else f"{int(year) // 10 * 10}s"
        i = self._index.get(label)
        if i is None:
            return _EMPTY_IDS, _EMPTY_VALUES
        return np.array([i], dtype=np.int64), np.ones(1)


# --- the compiled model ----------------------------------------------------------------------


@dataclass(eq=False)
class Block:
    """One transformer of the ColumnTransformer: its input column, vectorizer and weight."""

    name: str
    column: str  # "plot", "title" or "year"
    vectorizer: TfidfText | DecadeOneHot
    weight: float
    offset: int = 0


class FastLinear:
    """The linear kind's pipeline as arrays: features per block, then ``expit(X @ W + b)``.

    A :class:`~moviegenre.model.genre_model.Scorer`: one plot scores in a fraction of a millisecond
    (25 ms at worst, for 20,000 characters of unseen words).

    Parameters
    ----------
    blocks : list of Block
        The ColumnTransformer's transformers, in its column order.
    coef : ndarray of shape (n_features, n_genres)
        The one-vs-rest coefficients side by side, in their stored dtype.
    intercept : ndarray of shape (n_genres,)
    constant : ndarray of shape (n_genres,)
        NaN for a fitted genre; for a genre that had a single class in training, the
        probability scikit-learn's constant predictor gives (0 or 1).
    """

    quick = True
    #: The compiled form's tag in ``fast.npz`` (:mod:`moviegenre.fast.bundle`).
    form = "linear"

    def __init__(self, blocks: list[Block], coef: np.ndarray, intercept: np.ndarray, constant: np.ndarray):
        offset = 0
        for block in blocks:
            block.offset = offset
            offset += block.vectorizer.width
        if coef.ndim != 2 or coef.shape[0] != offset:
            raise ValueError(f"coefficients of shape {coef.shape} do not fit {offset} features")
        self.blocks = blocks
        # Scores are computed in float64 from the stored (float32) coefficients, as
        # scikit-learn does; a single plot's rows are converted as they are gathered.
        self.coef = np.ascontiguousarray(coef)
        self._coef64: np.ndarray | None = None
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.constant = np.asarray(constant, dtype=np.float64)
        self._constant_mask = ~np.isnan(self.constant)
        self._blocks_by_column = [(block, block.column) for block in blocks]

    @property
    def n_features(self) -> int:
        return self.coef.shape[0]

    @property
    def n_outputs(self) -> int:
        return self.coef.shape[1]

    def features_one(self, plot: str, title: str = "", year: float = math.nan) -> tuple[np.ndarray, np.ndarray]:
        """Column indices (sorted) and values of one item's feature row."""
        inputs = {"plot": plot, "title": title, "year": year}
        id_parts, value_parts = [], []
        for block, column in self._blocks_by_column:
            ids, values = block.vectorizer.features(inputs[column])
            if ids.size:
                id_parts.append(ids + block.offset if block.offset else ids)
                value_parts.append(values * block.weight if block.weight != 1.0 else values)
        if not id_parts:
            return _EMPTY_IDS, _EMPTY_VALUES
        return np.concatenate(id_parts), np.concatenate(value_parts)

    def transform(self, plots: Sequence[str], titles: Sequence[str] | None = None, years=None):
        """The pipeline's feature matrix (a ``scipy.sparse`` CSR matrix), equal to the
        ColumnTransformer's output."""
        from scipy import sparse

        indptr, ids, values = self._rows(plots, titles, years)
        return sparse.csr_matrix((values, ids, indptr), shape=(len(indptr) - 1, self.n_features))

    def _rows(self, plots, titles, years):
        n = len(plots)
        titles = [""] * n if titles is None else titles
        years = np.full(n, np.nan) if years is None else np.asarray(years, dtype=np.float64)
        indptr = np.zeros(n + 1, dtype=np.int64)
        id_parts, value_parts = [], []
        for i, (plot, title, year) in enumerate(zip(plots, titles, years, strict=True)):
            ids, values = self.features_one(plot, title, float(year))
            id_parts.append(ids)
            value_parts.append(values)
            indptr[i + 1] = indptr[i] + ids.size
        ids = np.concatenate(id_parts) if id_parts else _EMPTY_IDS
        values = np.concatenate(value_parts) if value_parts else _EMPTY_VALUES
        return indptr, ids, values

    def predict_proba_one(self, plot: str, title: str = "", year: float = math.nan) -> np.ndarray:
        """(n_genres,) probabilities of one item: the hot path of a single request."""
        return self._probabilities(self._logits_one(plot, title, year))

    def predict_proba(self, plots: Sequence[str], titles: Sequence[str] | None = None, years=None) -> np.ndarray:
        """(n, n_genres) probabilities, equal to the pipeline's ``predict_proba``."""
        return self._probabilities(self._logits(plots, titles, years))

    def decision_one(self, plot: str, title: str = "", year: float = math.nan) -> np.ndarray:
        """(n_genres,) scores of one item, equal to the pipeline's ``decision_function``."""
        return self._decisions(self._logits_one(plot, title, year))

    def decision_function(self, plots: Sequence[str], titles: Sequence[str] | None = None, years=None) -> np.ndarray:
        """(n, n_genres) scores, equal to the pipeline's ``decision_function``: the logits, and
        for a genre with a single class in training, that class (0 or 1)."""
        return self._decisions(self._logits(plots, titles, years))

    def _logits_one(self, plot: str, title: str, year: float) -> np.ndarray:
        ids, values = self.features_one(plot, title, year)
        return values @ self.coef[ids] + self.intercept

    def _logits(self, plots: Sequence[str], titles: Sequence[str] | None, years) -> np.ndarray:
        if len(plots) == 1:
            title = "" if titles is None else titles[0]
            year = math.nan if years is None else float(np.asarray(years, dtype=np.float64)[0])
            return self._logits_one(plots[0], title, year)[None, :]
        if len(plots) == 0:
            return np.zeros((0, self.n_outputs))
        if self._coef64 is None:
            self._coef64 = self.coef.astype(np.float64)
        return self.transform(plots, titles, years) @ self._coef64 + self.intercept

    def _probabilities(self, scores: np.ndarray) -> np.ndarray:
        proba = expit(scores)
        if self._constant_mask.any():
            proba[..., self._constant_mask] = self.constant[self._constant_mask]
        return proba

    def _decisions(self, scores: np.ndarray) -> np.ndarray:
        # scikit-learn's constant predictor "decides" its class itself
        if self._constant_mask.any():
            scores[..., self._constant_mask] = self.constant[self._constant_mask]
        return scores


