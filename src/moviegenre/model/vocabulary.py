"""A vectorizer's vocabulary as ``model.skops`` stores it: two arrays, not a node per term.

skops writes a dict as one JSON node per key and per value, each with its type, indented by
level: the linear kind's 107,000 terms made an 88 MB ``schema.json`` that the type check at load
(:mod:`moviegenre.model.trust`) had to inflate and scan, half a second of every cold start, and
that skops took seconds to write and to read. :func:`~moviegenre.model.artifact.save_model`
wraps every estimator's ``vocabulary_`` dict in a :class:`Vocabulary` while it writes the file,
which skops stores as arrays (``.npy`` members, read without pickle), and loading the pipeline
puts the dict back (:func:`restore_vocabularies`): the pipeline in memory is the same either
way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from moviegenre.kinds.graph import estimators

#: The attribute holding a fitted vectorizer's vocabulary (Tfidf-, Count- and DictVectorizer).
ATTRIBUTE = "vocabulary_"


class Vocabulary:
    """A ``{term: column}`` dict (``mapping``) whose skops state is the terms' UTF-8 bytes end to
    end, each term's length in bytes and each term's column, in the dict's order."""

    def __init__(self, mapping: dict[str, int]):
        self.mapping = mapping

    def __getstate__(self) -> dict[str, np.ndarray]:
        encoded = [term.encode("utf-8", "surrogatepass") for term in self.mapping]
        return {
            "utf8": np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(),
            "lengths": np.array([len(term) for term in encoded], dtype=np.int64),
            "columns": np.array([int(column) for column in self.mapping.values()], dtype=np.int64),
        }

    def __setstate__(self, state: Any) -> None:
        """Rebuild the dict from a file's arrays, checked: ``ValueError`` for any that do not
        make one (skops then refuses the file)."""
        if not isinstance(state, dict) or set(state) != {"utf8", "lengths", "columns"}:
            raise ValueError("a vocabulary's state must hold the arrays utf8, lengths and columns")
        utf8, lengths, columns = state["utf8"], state["lengths"], state["columns"]
        for name, array, dtype in (("utf8", utf8, np.uint8), ("lengths", lengths, np.int64),
                                   ("columns", columns, np.int64)):  # fmt: skip
            if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype != dtype:
                raise ValueError(f"a vocabulary's {name} must be a one-dimensional {np.dtype(dtype)} array")
        in_range = not np.any((lengths < 0) | (lengths > len(utf8)))  # then their sum cannot wrap
        if len(lengths) != len(columns) or not in_range or int(lengths.sum()) != len(utf8):
            raise ValueError("a vocabulary's lengths must add up to its bytes, one per column")
        blob, ends = utf8.tobytes(), np.cumsum(lengths).tolist()
        starts = [0, *ends][:-1]
        terms = [blob[start:end].decode("utf-8", "surrogatepass") for start, end in zip(starts, ends, strict=True)]
        self.mapping = dict(zip(terms, columns.tolist(), strict=True))
        if len(self.mapping) != len(terms):
            raise ValueError("a vocabulary must not hold a term twice")


@contextmanager
def vocabularies_as_arrays(pipeline: Any) -> Iterator[None]:
    """Within the block, every estimator's ``vocabulary_`` dict in ``pipeline`` is wrapped in a
    :class:`Vocabulary` (for skops to write); the dicts are put back after it, however it ends."""
    wrapped = []
    try:
        for part in estimators(pipeline):
            vocabulary = getattr(part, ATTRIBUTE, None)
            if _terms_to_columns(vocabulary):
                setattr(part, ATTRIBUTE, Vocabulary(vocabulary))
                wrapped.append((part, vocabulary))
        yield
    finally:
        for part, vocabulary in wrapped:
            setattr(part, ATTRIBUTE, vocabulary)


def _terms_to_columns(vocabulary: Any) -> bool:
    """Whether ``vocabulary`` is a dict of text to integer columns, which :class:`Vocabulary`
    stores exactly; anything else is left to skops as it is."""
    return (
        type(vocabulary) is dict
        and all(type(term) is str for term in vocabulary)
        and all(isinstance(column, int | np.integer) and not isinstance(column, bool) for column in vocabulary.values())
    )


def restore_vocabularies(pipeline: Any) -> Any:
    """``pipeline`` as read from a file, with each :class:`Vocabulary` replaced by its dict."""
    for part in estimators(pipeline):
        vocabulary = getattr(part, ATTRIBUTE, None)
        if isinstance(vocabulary, Vocabulary):
            setattr(part, ATTRIBUTE, vocabulary.mapping)
    return pipeline


__all__ = ["Vocabulary", "restore_vocabularies", "vocabularies_as_arrays"]
