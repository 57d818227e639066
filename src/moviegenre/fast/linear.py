"""The ``linear`` kind compiled to plain arrays: features, then one matrix product.

The ``linear`` kind is a ColumnTransformer of TF-IDF vectorizers (plot words, plot character
n-grams, title words) and a one-hot decade, under one logistic regression per genre. Everything
after the vectorizers is linear, so the 24 regressions collapse into one coefficient matrix
``W`` (features x genres) and one intercept ``b``: one sparse-by-dense product scores every
genre. :class:`FastLinear` rebuilds the pipeline's features exactly (same tokens, counts,
TF-IDF weights and L2 norms, bit for bit) without scikit-learn's per-call validation, without a
DataFrame, and with each distinct word of a column looked up once for all its vectorizers
(:mod:`moviegenre.fast.words`).

Needs numpy alone (scipy only for a batch's sparse matrix). :mod:`moviegenre.kinds.compile`
builds it from a fitted pipeline; :mod:`moviegenre.fast.bundle` stores it.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import filterfalse, repeat
from typing import Any

import numpy as np

from moviegenre.fast.maths import expit
from moviegenre.fast.words import Rows, WordTable

_EMPTY_IDS = np.zeros(0, dtype=np.int64)
_EMPTY_VALUES = np.zeros(0, dtype=np.float64)
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
    #: The word n-gram index as :meth:`gram_index` gave it (from a bundle): read at construction
    #: (else made there, from the terms) and not kept.
    grams: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._vocabulary: dict[str, int] | None = None
        self._stop = frozenset(self.stop_words) if self.stop_words else None
        self._findall = re.compile(self.token_pattern).findall
        self._rows = Rows()
        self._spans: dict[int, list[tuple[int, int]]] = {}
        # Read word by word off a WordTable (a FastLinear shares one per column): char_wb always;
        # the word analyzer when its tokens cannot span whitespace and its n-grams' keys fit.
        self.table: WordTable | None = None
        if self.analyzer == "char_wb" or (self.token_pattern == DEFAULT_TOKEN_PATTERN and self._index_grams()):
            self.table = WordTable([self])
        self.grams = None

    @property
    def width(self) -> int:
        return len(self.terms)

    @property
    def vocabulary(self) -> dict[str, int]:
        """Each term's column. Made when first needed (40,000 to 60,000 terms: 10 ms): a loaded
        model's word tables know the words of its vocabulary already, and need it only for the
        words of a text that they do not know."""
        if self._vocabulary is None:
            vocabulary = dict(zip(self.terms, range(len(self.terms)), strict=True))
            if len(vocabulary) != len(self.terms):
                raise ValueError(f"the {self.analyzer} vocabulary repeats a term")
            self._vocabulary = vocabulary
        return self._vocabulary

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

    # --- words as rows of integers ------------------------------------------------------------

    def _index_grams(self) -> bool:
        """Index the word vocabulary by integers, in place of joining strings and looking them
        up: a token's id is its column when it is a term (a term of several words has a space,
        which a token never has), else a number past the columns when it is a word of such a
        term, else ``unknown`` (the largest). A unigram's column is read from an array by
        token id; an n-gram's column is found by its key (its token ids as the digits of a
        number in base ``unknown + 1``) in a sorted array of the terms' keys. False if a key
        would not fit in an int64. Read from :attr:`grams` when a bundle stored it
        (:meth:`gram_index`; 30 ms of a cold start otherwise)."""
        if self.grams is not None:
            return self._index_grams_from(self.grams)
        width = self.width
        multi = [column for column, term in enumerate(self.terms) if " " in term]
        multi_terms = list(map(self.terms.__getitem__, multi))
        words = " ".join(multi_terms).split(" ")
        ids = np.fromiter(map(self.vocabulary.get, words, repeat(-1)), dtype=np.int64, count=len(words))
        extra_tokens: dict[str, int] = {}
        for i in np.flatnonzero(ids < 0).tolist():
            ids[i] = extra_tokens.setdefault(words[i], width + len(extra_tokens))
        base = width + len(extra_tokens) + 1
        if base ** self.ngram_range[1] >= 2**63:
            return False
        lengths = np.fromiter(map(str.count, multi_terms, repeat(" ")), dtype=np.int64, count=len(multi)) + 1
        starts = np.cumsum(lengths) - lengths
        columns = np.array(multi, dtype=np.int32)
        gram_keys = {}
        for n in sorted(set(lengths.tolist())):  # (np.unique would import numpy.ma: 15 ms of a cold start)
            first = starts[lengths == n]
            keys = ids[first]
            for i in range(1, n):
                keys = keys * base + ids[first + i]
            order = np.argsort(keys)
            gram_keys[n] = (keys[order], columns[lengths == n][order])
        self._use_gram_index(extra_tokens, gram_keys)
        return True

    def _use_gram_index(self, extra_tokens: dict[str, int],
                        gram_keys: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
        """Take the index of :meth:`_index_grams` made of the extra tokens' ids and the sorted
        keys and columns of each n-gram length, and derive the rest: the base, the unknown
        token, and each token id's unigram column (-1 for an id past the columns, or the column
        of a term of several words)."""
        base = self.width + len(extra_tokens) + 1
        self._extra_tokens, self._gram_keys, self._base = extra_tokens, gram_keys, base
        self._unknown_token = base - 1
        self._unigram_columns = np.arange(base, dtype=np.int32)
        self._unigram_columns[self.width :] = -1
        for _, columns in gram_keys.values():
            self._unigram_columns[columns] = -1

    def gram_index(self) -> dict[str, Any] | None:
        """The word n-gram index (:meth:`_index_grams`) as plain data for a bundle: the words of
        several-word terms that are not terms, in id order, and per n-gram length the sorted
        keys and their columns. None for a vectorizer that has none."""
        if self.analyzer != "word" or self.table is None:
            return None
        return {"extra": list(self._extra_tokens),
                "keys": {n: keys for n, (keys, _) in self._gram_keys.items()},
                "columns": {n: columns for n, (_, columns) in self._gram_keys.items()}}

    def _index_grams_from(self, grams: dict[str, Any]) -> bool:
        """:meth:`_index_grams` from what :meth:`gram_index` gave, checked (ValueError)."""
        width = self.width
        extra = [str(word) for word in grams["extra"]]
        extra_tokens = dict(zip(extra, range(width, width + len(extra)), strict=True))
        base = width + len(extra) + 1
        if len(extra_tokens) != len(extra) or sorted(grams["keys"]) != sorted(grams["columns"]):
            raise ValueError("a malformed word n-gram index")
        gram_keys = {}
        for n in sorted(grams["keys"]):
            keys, columns = np.asarray(grams["keys"][n]), np.asarray(grams["columns"][n])
            if (not 2 <= n <= self.ngram_range[1] or keys.dtype != np.int64 or keys.ndim != 1
                    or columns.shape != keys.shape or columns.dtype.kind not in "iu"):
                raise ValueError(f"a malformed word {n}-gram index")
            if keys.size and (keys[0] < 0 or keys[-1] >= base**n or (np.diff(keys) <= 0).any()
                              or columns.min() < 0 or columns.max() >= width):
                raise ValueError(f"word {n}-gram keys out of order or out of range")
            gram_keys[n] = (keys, columns.astype(np.int32))
        self._use_gram_index(extra_tokens, gram_keys)
        if int((self._unigram_columns[:width] < 0).sum()) != sum(columns.size for _, columns in gram_keys.values()):
            raise ValueError("word n-gram columns repeat")
        return True

    @property
    def row_values(self) -> int:
        """One more than the largest value of a word's row (:meth:`word_row`)."""
        return self.width if self.analyzer == "char_wb" else self._base

    def word_row(self, word: str) -> list[int]:
        """A whitespace-free ``word``'s row of a :class:`WordTable`: its n-grams' columns (sorted,
        one per occurrence) for a ``char_wb`` vectorizer; its tokens' ids, stop words left out,
        for a word vectorizer."""
        if self.analyzer == "char_wb":
            return self._char_wb_list(word)
        ids = []
        for token in self._tokens(word):
            i = self.vocabulary.get(token)
            ids.append(self._extra_tokens.get(token, self._unknown_token) if i is None else i)
        return ids

    def _columns_of_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """The vocabulary columns of the n-grams of a text's ``tokens`` (ids, in order), unsorted."""
        min_n, max_n = self.ngram_range
        tokens = tokens.astype(np.int64)
        parts = []
        if min_n == 1:
            parts.append(self._unigram_columns.take(tokens))
        for n in range(max(min_n, 2), max_n + 1):
            if n not in self._gram_keys or tokens.size < n:
                continue
            m = tokens.size - n + 1
            keys = tokens[:m].copy()
            for i in range(1, n):
                keys *= self._base
                keys += tokens[i : i + m]
            known_keys, columns = self._gram_keys[n]
            found = known_keys.searchsorted(keys)
            found[found == known_keys.size] = 0
            parts.append(np.where(known_keys.take(found) == keys, columns.take(found), -1))
        ids = np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else _EMPTY_IDS
        return ids[ids >= 0]

    # --- features ---------------------------------------------------------------------------

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Sorted column indices and TF-IDF values of ``text``: one row of ``transform``."""
        if not text:
            return _EMPTY_IDS, _EMPTY_VALUES
        if self.table is not None:
            with self.table.lock:
                return self.features_of_rows(self.table.rows(text))
        if self.lowercase:
            text = text.lower()
        return self._tfidf(*self._word_counts(text))

    def features_of_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`features` of the text whose words are ``rows`` of this vectorizer's table."""
        if not rows.size:
            return _EMPTY_IDS, _EMPTY_VALUES
        ids = self.columns_of_rows(rows)
        if not ids.size:
            return _EMPTY_IDS, _EMPTY_VALUES
        return self._tfidf(*_counted(ids))

    def columns_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """The vocabulary columns of the text whose words are ``rows`` (non-empty) of this
        vectorizer's table, unsorted, one per occurrence."""
        ids = self._rows.gather(rows)
        if self.analyzer == "word" and ids.size:
            ids = self._columns_of_tokens(ids)
        return ids

    def _tfidf(self, ids: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
            total = float((values * values).cumsum()[-1])
            if total != 0.0:
                values /= math.sqrt(total)
        return ids, values

    def _tokens(self, text: str) -> list[str]:
        tokens = self._findall(text)
        if self._stop is not None:
            tokens = list(filterfalse(self._stop.__contains__, tokens))
        return tokens

    def _word_counts(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Counts of a word vectorizer whose tokens may span whitespace, from strings."""
        grams = _word_ngrams(self._tokens(text), self.ngram_range)
        ids = np.fromiter(map(self.vocabulary.get, grams, repeat(-1)), dtype=np.int64, count=len(grams))
        ids = ids[ids >= 0]
        if not ids.size:
            return _EMPTY_IDS, _EMPTY_VALUES
        return _counted(ids)

    def _char_wb_word(self, word: str) -> np.ndarray:
        """scikit-learn's ``_char_wb_ngrams`` for one word, looked up in the vocabulary: the
        columns of its n-grams, sorted, one entry per occurrence."""
        return np.array(self._char_wb_list(word), dtype=np.int64)

    def _char_wb_list(self, word: str) -> list[int]:
        get = self.vocabulary.get
        min_n, max_n = self.ngram_range
        w = " " + word + " "
        w_len = len(w)
        if w_len > max_n:
            # every n-gram of every n: slice by the (start, end) pairs of this length, made once
            # (a third faster than a slice loop per n, for words met the first time)
            spans = self._spans.get(w_len)
            if spans is None:
                spans = [(i, i + n) for n in range(min_n, max_n + 1) for i in range(w_len - n + 1)]
                if w_len <= 64:  # not the spans of every odd long word
                    self._spans[w_len] = spans
            grams = [w[start:end] for start, end in spans]
        else:
            grams = []
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
    # (methods and operators, not numpy's Python-level functions: microseconds a plot)
    starts = edges.nonzero()[0]
    counts = (starts[1:] - starts[:-1]).astype(np.float64)
    return ids.take(starts[:-1]).astype(np.int64, copy=False), counts


def _word_ngrams(tokens: list[str], ngram_range: tuple[int, int]) -> list[str]:
    """The n-grams scikit-learn's ``_word_ngrams`` makes of ``tokens``, in the same order."""
    min_n, max_n = ngram_range
    grams = list(tokens) if min_n == 1 else []
    for n in range(max(min_n, 2), max_n + 1):
        grams += map(" ".join, zip(*(tokens[i:] for i in range(n)), strict=False))  # n at a time
    return grams


def _alike(a: TfidfText, b: TfidfText) -> bool:
    """Whether two vectorizers weigh their counts with the same steps (see _table_features)."""
    return (a.sublinear_tf, a.idf is None, a.norm) == (b.sublinear_tf, b.idf is None, b.norm)


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
        # The text vectorizers read word by word share one WordTable per column (those that
        # lower-case as the column's first one does), so each word of a text is looked up once.
        self.word_tables: dict[str, WordTable] = {}
        self._lock = threading.Lock()  # every word table's (WordTable.lock): features_one holds it
        for column in dict.fromkeys(block.column for block in blocks):
            readers = [b.vectorizer for b in blocks if b.column == column and isinstance(b.vectorizer, TfidfText)
                       and b.vectorizer.table is not None]
            readers = [v for v in readers if v.lowercase == readers[0].lowercase] if readers else []
            if readers:
                table = WordTable(readers, lock=self._lock)
                for vectorizer in readers:
                    vectorizer.table = table
                self.word_tables[column] = table
        # The blocks in order, as steps: a block alone (no table), or a run of consecutive
        # blocks that read one word table and weigh their counts alike, whose columns are
        # counted and weighed together (_table_features: half the numpy calls).
        self._steps: list[tuple[str, list[Block], WordTable | None]] = []
        for block in blocks:
            table = self.word_tables.get(block.column)
            if table is None or block.vectorizer not in table.vectorizers:
                self._steps.append((block.column, [block], None))
            elif self._steps and self._steps[-1][2] is table and _alike(self._steps[-1][1][0].vectorizer,
                                                                        block.vectorizer):
                self._steps[-1][1].append(block)
            else:
                self._steps.append((block.column, [block], table))
        self._idf = np.concatenate([b.vectorizer.idf if isinstance(b.vectorizer, TfidfText) and b.vectorizer.idf
                                    is not None else np.ones(b.vectorizer.width) for b in blocks] or [_EMPTY_VALUES])

    def precompute_words(self, column: str, words: Sequence[str],
                         stored: dict[int, tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        """Know the rows of ``words`` in the word table of ``column`` before they are met
        (:meth:`WordTable.precompute`): computed, or ``stored`` by block index (a bundle's)."""
        table = self.word_tables[column]
        if stored is not None:
            index = {id(block.vectorizer): i for i, block in enumerate(self.blocks)}
            if sorted(stored) != sorted(index[id(v)] for v in table.vectorizers):
                raise ValueError(f"precomputed rows for blocks {sorted(stored)} of column {column!r}")
            table.precompute(words, [stored[index[id(v)]] for v in table.vectorizers])
        else:
            table.precompute(words)

    def known_words(self, column: str) -> tuple[list[str], dict[int, tuple[np.ndarray, np.ndarray]]]:
        """The precomputed words of ``column`` and their rows by block index (for a bundle)."""
        table = self.word_tables[column]
        words, stored = table.known()
        index = {id(block.vectorizer): i for i, block in enumerate(self.blocks)}
        return words, {index[id(v)]: rows for v, rows in zip(table.vectorizers, stored, strict=True)}

    @property
    def n_features(self) -> int:
        return self.coef.shape[0]

    @property
    def n_outputs(self) -> int:
        return self.coef.shape[1]

    def features_one(self, plot: str, title: str = "", year: float = math.nan) -> tuple[np.ndarray, np.ndarray]:
        """Column indices (sorted) and values of one item's feature row."""
        with self._lock:
            return self._features_one({"plot": plot, "title": title, "year": year})

    def _features_one(self, inputs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        id_parts, value_parts = [], []
        rows_of: dict[str, np.ndarray] = {}
        for column, blocks, table in self._steps:
            if table is None:
                block = blocks[0]
                ids, values = block.vectorizer.features(inputs[column])
                if ids.size:
                    id_parts.append(ids + block.offset if block.offset else ids)
                    value_parts.append(values * block.weight if block.weight != 1.0 else values)
                continue
            if not inputs[column]:  # (no title, often)
                continue
            rows = rows_of.get(column)
            if rows is None:
                rows = rows_of[column] = table.rows(inputs[column])
            ids, values = self._table_features(blocks, rows)
            if ids.size:
                id_parts.append(ids)
                value_parts.append(values)
        if not id_parts:
            return _EMPTY_IDS, _EMPTY_VALUES
        return np.concatenate(id_parts), np.concatenate(value_parts)

    def _table_features(self, blocks: list[Block], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The features of consecutive ``blocks`` (alike: :func:`_alike`) of the text whose words
        are ``rows`` of their word table: counted together, then TF-IDF weighed and normalised
        block by block, with the same operations as each block's :meth:`TfidfText.features`."""
        if not rows.size:
            return _EMPTY_IDS, _EMPTY_VALUES
        parts = [block.vectorizer.columns_of_rows(rows) + block.offset for block in blocks]
        ids = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if not ids.size:
            return _EMPTY_IDS, _EMPTY_VALUES
        ids, values = _counted(ids)
        first = blocks[0].vectorizer
        if first.sublinear_tf:
            np.log(values, out=values)
            values += 1.0
        if first.idf is not None:
            values *= self._idf.take(ids)
        ends = ids.searchsorted([block.offset for block in blocks[1:]]).tolist() + [ids.size]
        start = 0
        for block, end in zip(blocks, ends, strict=True):
            if end > start:
                part = values[start:end]
                if first.norm == "l2":
                    # normalize sums the squares one by one, left to right: cumsum does too.
                    total = float((part * part).cumsum()[-1])
                    if total != 0.0:
                        part /= math.sqrt(total)
                if block.weight != 1.0:
                    part *= block.weight
            start = end
        return ids, values

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


