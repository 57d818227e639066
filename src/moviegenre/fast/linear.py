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
from itertools import chain, filterfalse, repeat
from typing import Any

import numpy as np

from moviegenre.fast.maths import expit

#: Distinct words whose character n-gram columns are cached per vectorizer (a few hundred
#: bytes each; the cache is emptied when full, so it stays under about 30 MB).
WORD_CACHE_SIZE = 100_000

_EMPTY_IDS = np.zeros(0, dtype=np.int64)
_EMPTY_VALUES = np.zeros(0, dtype=np.float64)
_EMPTY_LENGTHS = np.zeros(0, dtype=np.int64)
_EMPTY_COLUMNS = np.zeros(0, dtype=np.int32)
#: scikit-learn's default ``token_pattern``: its tokens never span whitespace.
DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"


# --- vectorizers ---------------------------------------------------------------------------


@dataclass(eq=False)
class TfidfText:
    """One fitted ``TfidfVectorizer`` (word or ``char_wb`` analyzer), as plain data."""

    analyzer: str
    terms: list[str]
    idf: np.ndarray | None
    ngram_range: tuple[int, int]
    lowercase: bool = True
    token_pattern: str = DEFAULT_TOKEN_PATTERN
    stop_words: list[str] | None = None
    sublinear_tf: bool = False
    norm: str | None = "l2"
    vocabulary: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.vocabulary = dict(zip(self.terms, range(len(self.terms)), strict=True))
        self._stop = frozenset(self.stop_words) if self.stop_words else None
        self._findall = re.compile(self.token_pattern).findall
        # word analyzer: whitespace-separated word -> its tokens (stop words dropped), when
        # the token pattern cannot match across whitespace
        self._split_tokens = self.token_pattern == DEFAULT_TOKEN_PATTERN
        self._word_cache: dict[str, tuple[str, ...]] = {}
        # char_wb analyzer: word -> row of a CSR table of its n-grams' columns (sorted, one
        # entry per occurrence). The first rows are the known words (precompute_words), stored
        # in the bundle; words met later are appended, up to WORD_CACHE_SIZE of them.
        self._known_words: list[str] = []
        self._known_index: dict[str, int] = {}
        self._set_rows(_EMPTY_LENGTHS, _EMPTY_COLUMNS)

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

    # --- the precomputed words of a char_wb vectorizer -----------------------------------------

    def precompute_words(self, words: Sequence[str], lengths: np.ndarray | None = None,
                         columns: np.ndarray | None = None) -> None:
        """Know the n-gram columns of ``words`` (whitespace-free, already lower-cased as the
        vectorizer reads them) before they are met: computed here, or as ``lengths`` (columns
        per word) and ``columns`` (every word's sorted columns, one after the other), as
        :meth:`known_words` gave them (from a bundle)."""
        if self.analyzer != "char_wb":
            raise ValueError(f"a {self.analyzer!r} vectorizer has no precomputed words")
        words = list(words)
        index = dict(zip(words, range(len(words)), strict=True))
        if len(index) != len(words):
            raise ValueError("precomputed words must be distinct")
        if lengths is None or columns is None:
            rows = [self._char_wb_list(word) for word in words]
            lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
            columns = np.fromiter(chain.from_iterable(rows), dtype=np.int32, count=int(lengths.sum()))
        lengths = np.asarray(lengths)
        columns = np.asarray(columns)
        if lengths.shape != (len(words),) or lengths.dtype.kind not in "iu" or columns.dtype.kind not in "iu":
            raise ValueError(f"{len(words)} precomputed words with {lengths.shape} lengths")
        if columns.ndim != 1 or (lengths.size and lengths.min() < 0) or int(lengths.sum()) != columns.size:
            raise ValueError("precomputed word lengths do not add up to their columns")
        if columns.size and (columns.min() < 0 or columns.max() >= self.width):
            raise ValueError("precomputed word columns out of range")
        self._known_words = words
        self._known_index = index
        self._set_rows(lengths.astype(np.int64), columns.astype(np.int32))

    def known_words(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The precomputed words, their lengths and columns (see :meth:`precompute_words`)."""
        n = len(self._known_words)
        indptr = self._indptr[: n + 1]
        return list(self._known_words), np.diff(indptr), self._columns[: indptr[-1]].copy()

    def _set_rows(self, lengths: np.ndarray, columns: np.ndarray) -> None:
        n = lengths.size
        self._indptr = np.zeros(n + 1 + 1024, dtype=np.int64)
        np.cumsum(lengths, out=self._indptr[1 : n + 1])
        self._columns = np.empty(columns.size + 16_384, dtype=np.int32)
        self._columns[: columns.size] = columns
        self._known_rows = n
        self._reset_rows()

    def _reset_rows(self) -> None:
        """Forget the words met since the precomputed ones."""
        self._row_of = self._known_index.copy()
        self._n_rows = self._known_rows

    def _add_rows(self, words: Sequence[str]) -> bool:
        """Append the rows of those of ``words`` that have none to the table; True if it had to
        forget the other words met so far (past WORD_CACHE_SIZE of them) first."""
        distinct = list(dict.fromkeys(words))
        words = [word for word in distinct if word not in self._row_of]
        reset = self._n_rows - self._known_rows + len(words) > WORD_CACHE_SIZE
        if reset:
            self._reset_rows()
            words = [word for word in distinct if word not in self._row_of]
        rows = [self._char_wb_list(word) for word in words]
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        start_row, end_row = self._n_rows, self._n_rows + len(rows)
        start = int(self._indptr[start_row])
        end = start + int(lengths.sum())
        if end_row + 1 > self._indptr.size:
            self._indptr = np.concatenate([self._indptr, np.zeros(max(end_row + 1, 2 * self._indptr.size), np.int64)])
        if end > self._columns.size:
            self._columns = np.concatenate([self._columns, np.empty(max(end, 2 * self._columns.size), np.int32)])
        np.cumsum(lengths, out=self._indptr[start_row + 1 : end_row + 1])
        self._indptr[start_row + 1 : end_row + 1] += start
        self._columns[start:end] = np.fromiter(chain.from_iterable(rows), dtype=np.int32, count=end - start)
        self._row_of.update(zip(words, range(start_row, end_row), strict=True))
        self._n_rows = end_row
        return reset

    # --- features ---------------------------------------------------------------------------

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
            values *= self.idf.take(ids)
        if self.norm == "l2":
            # normalize sums the squares one by one, left to right: cumsum does too.
            total = float(np.cumsum(values * values)[-1])
            if total != 0.0:
                values /= math.sqrt(total)
        return ids, values

    def _tokens(self, text: str) -> list[str]:
        if not self._split_tokens:
            tokens = self._findall(text)
            if self._stop is not None:
                tokens = list(filterfalse(self._stop.__contains__, tokens))
            return tokens
        # The default pattern's tokens are runs of word characters, which whitespace ends: the
        # text's tokens are its whitespace-separated words' tokens, each word's looked up once.
        words = text.split()
        try:
            return list(chain.from_iterable(map(self._word_cache.__getitem__, words)))
        except KeyError:
            pass
        cache = self._word_cache
        fresh = [word for word in dict.fromkeys(words) if word not in cache]
        if len(cache) + len(fresh) > WORD_CACHE_SIZE:
            cache.clear()
            fresh = list(dict.fromkeys(words))
        stop = self._stop
        for word in fresh:
            found = self._findall(word)
            cache[word] = tuple(found if stop is None else filterfalse(stop.__contains__, found))
        return list(chain.from_iterable(map(cache.__getitem__, words)))

    def _word_counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        tokens = self._tokens(text)
        grams = _word_ngrams(tokens, self.ngram_range)
        ids = np.fromiter(map(self.vocabulary.get, grams, repeat(-1)), dtype=np.int64, count=len(grams))
        ids = ids[ids >= 0]
        if not ids.size:
            return _EMPTY_IDS, _EMPTY_VALUES
        return _counted(ids)

    def _char_wb_counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        # A document's char_wb n-grams are those of its whitespace-separated words taken one
        # by one, so each distinct word's n-gram columns are a row of a table, computed once.
        # (scikit-learn first turns whitespace runs into one space; split() alone splits the
        # same way, on the same whitespace characters.)
        words = text.split()
        if not words:
            return _EMPTY_IDS, _EMPTY_VALUES
        rows = np.fromiter(map(self._row_of.get, words, repeat(-1)), dtype=np.int64, count=len(words))
        if rows.min() < 0:
            if self._add_rows(words):  # the table was reset: every row may have moved
                rows = np.fromiter(map(self._row_of.__getitem__, words), dtype=np.int64, count=len(words))
            else:
                missing = np.flatnonzero(rows < 0)
                rows[missing] = list(map(self._row_of.__getitem__, map(words.__getitem__, missing.tolist())))
        indptr = self._indptr
        starts = indptr.take(rows)
        lengths = indptr.take(rows + 1)
        lengths -= starts
        ends = np.cumsum(lengths)
        total = int(ends[-1])
        if not total:
            return _EMPTY_IDS, _EMPTY_VALUES
        # positions of every row's columns, one row after the other
        ends -= lengths
        starts -= ends
        positions = np.repeat(starts, lengths)
        positions += np.arange(total)
        return _counted(self._columns.take(positions))

    def _char_wb_word(self, word: str) -> np.ndarray:
        """scikit-learn's ``_char_wb_ngrams`` for one word, looked up in the vocabulary: the
        columns of its n-grams, sorted, one entry per occurrence."""
        return np.array(self._char_wb_list(word), dtype=np.int64)

    def _char_wb_list(self, word: str) -> list[int]:
        get = self.vocabulary.get
        min_n, max_n = self.ngram_range
        w = " " + word + " "
        w_len = len(w)
        grams: list[str] = []
        for n in range(min_n, max_n + 1):
            if w_len <= n:  # a word shorter than n is counted once
                grams.append(w)
                break
            grams += [w[i : i + n] for i in range(w_len - n + 1)]
        ids = [i for i in map(get, grams) if i is not None]
        ids.sort()
        return ids


def _counted(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(ids, return_counts=True)``, the counts as floats, for a non-empty 1-d array."""
    ids.sort()
    n = ids.size
    edges = np.empty(n + 1, dtype=bool)
    edges[0] = edges[n] = True
    np.not_equal(ids[1:], ids[:-1], out=edges[1:n])
    starts = np.flatnonzero(edges)
    counts = np.diff(starts).astype(np.float64)
    return ids.take(starts[:-1]).astype(np.int64, copy=False), counts


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
        return values @ self.coef.take(ids, axis=0) + self.intercept

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


