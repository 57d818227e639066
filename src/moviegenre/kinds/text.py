"""Text helpers used inside model pipelines.

They are module-level functions so that skops stores them by name (never by pickling code) and
the model loader can list them as trusted.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

import numpy as np
from nltk.stem.porter import PorterStemmer

from moviegenre.core.errors import ModelError

_NOT_LETTER = re.compile(r"[^a-zA-Z]")
_WORD = re.compile(r"\b\w+\b")
_STEMMER = PorterStemmer()


@lru_cache(maxsize=1)
def english_stopwords() -> frozenset[str]:
    """NLTK's English stopwords, found through ``nltk.data`` (set ``NLTK_DATA`` to point at them)."""
    from nltk.corpus import stopwords

    try:
        return frozenset(stopwords.words("english"))
    except LookupError:
        raise ModelError(
            "the seed model needs NLTK's English stopwords, which were not found: set NLTK_DATA "
            "to a folder holding corpora/stopwords, or run `python -m nltk.downloader stopwords`"
        ) from None


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
