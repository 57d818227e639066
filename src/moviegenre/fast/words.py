"""A column's words, each looked up once for every vectorizer of the compiled linear form
that reads the column (:mod:`moviegenre.fast.linear`).

A freshly loaded model spends most of a plot's time on lookups that miss the CPU cache: one
dict lookup per whitespace-separated word, shared by the word and ``char_wb`` vectorizers of a
column, replaces a lookup per vectorizer and, for the word vectorizer, a regex, string joins and
string lookups per token and word pair. Each word is a row of an integer table per vectorizer
(:class:`Rows`): its n-gram columns, or its token ids. The vocabulary's words are precomputed
and stored in the bundle; words met later are appended, up to :data:`WORD_CACHE_SIZE`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from itertools import accumulate, chain, repeat
from typing import Protocol

import numpy as np

#: Distinct words met after loading whose rows are kept per vectorizer (a few hundred bytes
#: each; the table forgets them when full, so it stays under about 30 MB).
WORD_CACHE_SIZE = 100_000

_EMPTY_IDS = np.zeros(0, dtype=np.int32)
_EMPTY_LENGTHS = np.zeros(0, dtype=np.int64)
_EMPTY_COLUMNS = np.zeros(0, dtype=np.int32)


class RowSource(Protocol):
    """What a :class:`WordTable` reads its rows from: a text vectorizer (``TfidfText``), or the
    static kind's tokenizer (``StaticTable``)."""

    lowercase: bool
    _rows: Rows

    @property
    def row_values(self) -> int:
        """The bound of a row's values (the vocabulary's size, or the token ids')."""
        ...

    def word_row(self, word: str) -> list[int]:
        """The row of a whitespace-free ``word``."""
        ...


class Rows:
    """A table of integer rows, one per word of a :class:`WordTable` (CSR: ``indptr`` and
    ``values``), that rows are appended to and truncated from."""

    def __init__(self) -> None:
        self.set(_EMPTY_LENGTHS, _EMPTY_COLUMNS)

    def set(self, lengths: np.ndarray, values: np.ndarray) -> None:
        n = lengths.size
        self.indptr = np.zeros(n + 1 + 1024, dtype=np.int64)
        np.cumsum(lengths, out=self.indptr[1 : n + 1])
        self.values = np.empty(values.size + 16_384, dtype=np.int32)
        self.values[: values.size] = values
        self.n = n

    def extend(self, lengths: Sequence[int], values: Sequence[int]) -> None:
        """Append rows of ``lengths`` whose values are ``values``, one row after the other (a
        list or an array: for a few rows, lists cost fewer numpy calls than arrays)."""
        start = int(self.indptr[self.n])
        ends = list(accumulate(lengths, initial=start))
        n = self.n + len(lengths)
        if n + 1 > self.indptr.size:
            self.indptr = np.concatenate([self.indptr, np.zeros(max(n + 1, self.indptr.size), np.int64)])
        if ends[-1] > self.values.size:
            self.values = np.concatenate([self.values, np.empty(max(ends[-1], self.values.size), np.int32)])
        self.values[start : ends[-1]] = values
        self.indptr[self.n : n + 1] = ends
        self.n = n

    def stored(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The lengths and values of the first ``n`` rows."""
        indptr = self.indptr[: n + 1]
        return np.diff(indptr), self.values[: indptr[-1]].copy()

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """The values of ``rows`` (int64), one row after the other, as one int32 array."""
        indptr = self.indptr
        starts = indptr.take(rows)
        lengths = indptr.take(rows + 1)
        lengths -= starts
        ends = lengths.cumsum()
        total = int(ends[-1])
        if not total:
            return _EMPTY_IDS
        # positions of every row's values, one row after the other
        ends -= lengths
        starts -= ends
        positions = starts.repeat(lengths)
        positions += np.arange(total)
        return self.values.take(positions)


class WordTable:
    """The whitespace-separated words of one column, each looked up once for every vectorizer
    that reads the column.

    Both analyzers read a text word by word: a ``char_wb`` vectorizer's n-grams are those of
    its whitespace-separated words, and the default token pattern's tokens never span
    whitespace. So a word is one row in a table per vectorizer (its n-gram columns, or its
    token ids: :meth:`TfidfText.word_row`), found with one dict lookup for all of them. A
    freshly loaded model spends its time on lookups that miss the CPU cache, so one lookup of
    each word replaces one per vectorizer, and, for the word vectorizer, a regex, string joins
    and string lookups per token and word pair. The first rows are the known words
    (:meth:`precompute`, stored in the bundle); words met later are appended, up to
    WORD_CACHE_SIZE of them, then forgotten.
    """

    def __init__(self, vectorizers: Sequence[RowSource], lock: threading.Lock | None = None) -> None:
        self.vectorizers = list(vectorizers)
        #: Held while a text's rows are found (:meth:`rows`, which may append new words' rows,
        #: or forget them) and their values read: threads that score at once (a server's
        #: workers) must not append to a table together, nor read a row being replaced.
        self.lock = threading.Lock() if lock is None else lock
        self.lowercase = self.vectorizers[0].lowercase
        if any(v.lowercase != self.lowercase for v in self.vectorizers):
            raise ValueError("the vectorizers of a word table must lower-case alike")
        self._known_words: list[str] = []
        self._known_index: dict[str, int] = {}
        for vectorizer in self.vectorizers:
            vectorizer._rows.set(_EMPTY_LENGTHS, _EMPTY_COLUMNS)
        self._forget()

    def precompute(self, words: Sequence[str], stored: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        """Know the rows of ``words`` (whitespace-free, lower-cased if the vectorizers lower-case)
        before they are met: computed here, or ``stored`` as :meth:`known` gave them, a
        (lengths, values) pair per vectorizer (from a bundle)."""
        words = list(words)
        index = dict(zip(words, range(len(words)), strict=True))
        if len(index) != len(words):
            raise ValueError("precomputed words must be distinct")
        if stored is None:
            stored = [tuple(np.array(part, dtype=np.int64) for part in _stacked_rows(vectorizer, words))
                      for vectorizer in self.vectorizers]
        if len(stored) != len(self.vectorizers):
            raise ValueError(f"{len(stored)} precomputed tables for {len(self.vectorizers)} vectorizers")
        checked = []
        for vectorizer, (lengths, values) in zip(self.vectorizers, stored, strict=True):
            lengths, values = np.asarray(lengths), np.asarray(values)
            if lengths.shape != (len(words),) or lengths.dtype.kind not in "iu" or values.dtype.kind not in "iu":
                raise ValueError(f"{len(words)} precomputed words with {lengths.shape} lengths")
            if values.ndim != 1 or (lengths.size and lengths.min() < 0) or int(lengths.sum()) != values.size:
                raise ValueError("precomputed word lengths do not add up to their values")
            if values.size and (values.min() < 0 or values.max() >= vectorizer.row_values):
                raise ValueError("precomputed word values out of range")
            checked.append((lengths.astype(np.int64), values.astype(np.int32)))
        self._known_words, self._known_index = words, index
        for vectorizer, (lengths, values) in zip(self.vectorizers, checked, strict=True):
            vectorizer._rows.set(lengths, values)
        self._forget()

    def known(self) -> tuple[list[str], list[tuple[np.ndarray, np.ndarray]]]:
        """The precomputed words, and each vectorizer's (lengths, values) of their rows."""
        n = len(self._known_words)
        return list(self._known_words), [vectorizer._rows.stored(n) for vectorizer in self.vectorizers]

    def _forget(self) -> None:
        """Forget the words met since the precomputed ones."""
        self._row_of = self._known_index.copy()
        for vectorizer in self.vectorizers:
            vectorizer._rows.n = len(self._known_words)

    def rows(self, text: str) -> np.ndarray:
        """The rows of ``text``'s whitespace-separated words, in order (int64). Call it, and
        read the rows' values, with :attr:`lock` held.

        (scikit-learn's char_wb first turns whitespace runs into one space; split() alone
        splits the same way, on the same whitespace characters.)"""
        if self.lowercase:
            text = text.lower()
        words = text.split()
        rows = self._looked_up(words)
        if words and rows.min() < 0:
            self._add(words, rows)
        return rows

    def _looked_up(self, words: list[str]) -> np.ndarray:
        """Each word's row, -1 for a word the table does not know."""
        return np.fromiter(map(self._row_of.get, words, repeat(-1)), dtype=np.int64, count=len(words))

    def _add(self, words: list[str], rows: np.ndarray) -> None:
        """Fill in the rows of those of ``words`` that have none (-1 in ``rows``), appending them
        to the tables (after forgetting the words met so far past WORD_CACHE_SIZE of them).
        Each vectorizer's rows of the new words are appended at once: a text's new words cost a
        few numpy calls, not a few per word."""
        missing, missing_words, fresh = _missing(words, rows)
        if self.vectorizers[0]._rows.n - len(self._known_words) + len(fresh) > WORD_CACHE_SIZE:
            self._forget()  # every row met before may be gone
            rows[:] = self._looked_up(words)
            missing, missing_words, fresh = _missing(words, rows)
        first = self.vectorizers[0]._rows.n
        for vectorizer in self.vectorizers:
            vectorizer._rows.extend(*_stacked_rows(vectorizer, fresh))
        row_of = self._row_of
        row_of.update(zip(fresh, range(first, first + len(fresh)), strict=True))
        rows[missing] = list(map(row_of.__getitem__, missing_words))


def _missing(words: list[str], rows: np.ndarray) -> tuple[np.ndarray, list[str], list[str]]:
    """Where ``rows`` has no row (-1), the words there, and those words once each, in order."""
    missing = (rows < 0).nonzero()[0]
    missing_words = list(map(words.__getitem__, missing.tolist()))
    return missing, missing_words, list(dict.fromkeys(missing_words))


def _stacked_rows(vectorizer: RowSource, words: list[str]) -> tuple[list[int], list[int]]:
    """The rows of ``words`` as the (lengths, values) of :meth:`Rows.extend`."""
    rows = list(map(vectorizer.word_row, words))
    return list(map(len, rows)), list(chain.from_iterable(rows))


__all__ = ["WORD_CACHE_SIZE", "RowSource", "Rows", "WordTable"]
