"""Text helpers used inside model pipelines.

They are module-level functions so that skops stores them by name (never by pickling code) and
the model loader can list them as trusted.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from importlib import resources

import numpy as np
from nltk.stem.porter import PorterStemmer

#: NLTK's English stopwords, one a line, beside this module.
STOPWORDS_FILE = "english_stopwords.txt"
_NOT_LETTER = re.compile(r"[^a-zA-Z]")
_WORD = re.compile(r"\b\w+\b")
_STEMMER = PorterStemmer()


@lru_cache(maxsize=1)
def english_stopwords() -> frozenset[str]:
    """NLTK's English stopwords (179 words), shipped with the package, so that the seed kind
    needs no NLTK data.

    ``english_stopwords.txt`` is NLTK's ``corpora/stopwords/english``, byte for byte (a test
    compares it with NLTK's where that is installed). NLTK took the list from the Snowball
    project's English stop words (via PostgreSQL) and augmented it (nltk/nltk_data#22); its
    maintainers distribute the stopwords corpus as is, without a licence of its own
    (nltk/nltk_data#149).
    """
    text = resources.files(__package__).joinpath(STOPWORDS_FILE).read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _STEMMER.stem(word)


def seed_tokenize(text: str) -> list[str]:
    """The original system's tokeniser.

    Drop apostrophes, keep only ASCII letters, lower-case, drop English stopwords, Porter-stem.

    >>> seed_tokenize("The brothers can't stop running")
    ['brother', 'cant', 'stop', 'run']
    """
    stop = english_stopwords()
    letters = _NOT_LETTER.sub(" ", text.replace("'", "")).lower()
    return [_stem(word) for word in letters.split() if word not in stop]


def word_counts(texts) -> list[dict[str, int]]:
    """Per text, the count of each ``\\b\\w+\\b`` word: the original's DictVectorizer input."""
    return [dict(Counter(_WORD.findall(text))) for text in texts]


def to_dense(matrix) -> np.ndarray:
    """Sparse to dense, as the original pipeline's ToDense step did."""
    return matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)


def decade_of(years) -> np.ndarray:
    """Years (float, NaN where unknown) to decade labels such as ``"1990s"`` or ``"unknown"``."""
    years = np.asarray(years, dtype=float).reshape(-1)
    labels = np.full(years.shape, "unknown", dtype=object)
    known = ~np.isnan(years)
    labels[known] = [f"{int(y) // 10 * 10}s" for y in years[known]]
    return labels.reshape(-1, 1)
