"""Explanations read from the compiled forms: every term's share of every genre's logit.

A :class:`~moviegenre.fast.linear.FastLinear` scores a genre as ``intercept + sum(feature value
x coefficient)``. :class:`LinearExplainer` hands each product to the words it came from: a
word's own feature to the word; a word pair ("killed brother", once stop words are dropped)
half to each word; a ``char_wb`` n-gram to the words it occurs in, in proportion to its
occurrences; the decade to the year. A term is a word as it appears in the item's plot or title,
or the year as sent. What cannot be handed to one (a token the text does not hold as a word,
the decade of an unknown year) is kept apart, so the parts add up to the logit exactly.

A blend of that linear model with an embedding model (:class:`~moviegenre.fast.static.FastStatic`,
or a hybrid's) is folded in by :func:`fold_blend`: the final logit ``w_text x text score +
w_embedding x embedding score + bias`` is ``w_text x`` each part, plus ``bias`` on the
intercept, plus the embedding part.

numpy alone; :mod:`moviegenre.model.explain` turns the parts into the explanation's JSON.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np

from moviegenre.core.errors import ModelError
from moviegenre.fast.linear import Block, DecadeOneHot, FastLinear, TfidfText
from moviegenre.fast.static import FastStatic, embedding_text

#: A term: the field it comes from (``plot``, ``title`` or ``year``) and its text there.
Term = tuple[str, str]
#: Where a contribution that no word or year can take is collected (``other_terms``).
OTHER: Term = ("", "")
YEAR = "year"

_WORD_RUN = re.compile(r"\w+")


class NotExplainable(ModelError):
    """The model cannot be explained: its kind has no explainer (``seed``, say), or the model
    lacks what its kind's explainer reads."""


class Parts(NamedTuple):
    """One item's explanation of every genre's logit: ``scores == intercept + weights.sum(axis=1)
    + other + (embedding or 0)``, to rounding."""

    terms: list[Term]
    weights: np.ndarray  # (genres, terms): each term's contribution
    other: np.ndarray  # (genres,): what no term could take
    intercept: np.ndarray  # (genres,)
    embedding: np.ndarray | None  # (genres,): the embedding model's part; None without one
    scores: np.ndarray  # (genres,): the logits


class Explainer(Protocol):
    """What a model kind gives to be explained (:attr:`ModelKind.explainer
    <moviegenre.kinds.registry.ModelKind.explainer>` builds one from a loaded model)."""

    def explain(self, plots: Sequence[str], titles: Sequence[str], years: np.ndarray) -> list[Parts]:
        """Per item (checked columns, as :func:`moviegenre.core.items.to_columns` gives them),
        its :class:`Parts`."""
        ...


class LinearExplainer:
    """The :class:`Parts` of a :class:`~moviegenre.fast.linear.FastLinear`'s logits.

    Built in microseconds: it reads the compiled model's own vocabularies, and keeps nothing
    per item.
    """

    def __init__(self, linear: FastLinear):
        self.linear = linear
        self._blocks = list(linear.blocks)
        self._starts = np.array([block.offset for block in self._blocks], dtype=np.int64)
        fitted = np.isnan(linear.constant)
        # a genre with one class in training scores its constant (0 or 1); its coefficients are 0
        self.intercept = np.where(fitted, linear.intercept, linear.constant)

    def explain(self, plots: Sequence[str], titles: Sequence[str], years: np.ndarray) -> list[Parts]:
        return [self.explain_one(plot, title, float(year)) for plot, title, year in zip(plots, titles, years,
                                                                                          strict=True)]

    def explain_one(self, plot: str, title: str = "", year: float = math.nan) -> Parts:
        ids, values = self.linear.features_one(plot, title, year)
        products = self.linear.coef[ids].astype(np.float64) * values[:, None]  # (features, genres)
        reader = _ItemReader(plot, title, year)
        terms: dict[Term, int] = {OTHER: 0}
        positions, owners, shares = [], [], []
        for position, (block, local) in enumerate(zip(*self._locate(ids), strict=True)):
            for term, share in self._terms_of(block, int(local), reader):
                positions.append(position)
                owners.append(terms.setdefault(term, len(terms)))
                shares.append(share)
        by_term = np.zeros((len(terms), products.shape[1]))
        if positions:
            np.add.at(by_term, np.array(owners), products[positions] * np.array(shares)[:, None])
        weights = np.ascontiguousarray(by_term[1:].T)
        scores = self.intercept + products.sum(axis=0)
        return Parts(list(terms)[1:], weights, by_term[0].copy(), self.intercept.copy(), None, scores)

    def _locate(self, ids: np.ndarray) -> tuple[list[Block], np.ndarray]:
        which = np.searchsorted(self._starts, ids, side="right") - 1
        return [self._blocks[i] for i in which], ids - self._starts[which]

    def _terms_of(self, block: Block, local: int, reader: _ItemReader) -> list[tuple[Term, float]]:
        vectorizer = block.vectorizer
        if isinstance(vectorizer, TfidfText) and block.column in ("plot", "title"):
            if vectorizer.analyzer == "word":
                words = vectorizer.terms[local].split(" ")
                return [(reader.term(block.column, word), 1 / len(words)) for word in words]
            if vectorizer.analyzer == "char_wb":
                words = reader.char_owners(block).get(local)
                total = sum(words.values()) if words else 0
                if total:
                    return [(reader.term(block.column, word), count / total) for word, count in words.items()]
        elif isinstance(vectorizer, DecadeOneHot):
            return [(reader.year_term(), 1.0)]
        return [(OTHER, 1.0)]


class StaticExplainer:
    """The :class:`Parts` of a :class:`~moviegenre.fast.static.FastStatic`'s logits: its linear
    model's terms, with the blend and the embedding model folded in (:func:`fold_blend`)."""

    def __init__(self, static: FastStatic):
        self.static = static
        self.text = LinearExplainer(static.text)
        self._coef = static.coef.astype(np.float64)
        self._constant = ~np.isnan(static.constant)

    def explain(self, plots: Sequence[str], titles: Sequence[str], years: np.ndarray) -> list[Parts]:
        rows = self.text.explain(plots, titles, years)
        if not rows:
            return []
        fields = [{"plot": plot, "title": title} for plot, title in zip(plots, titles, strict=True)]
        texts = [embedding_text([item[column] for column in self.static.columns]) for item in fields]
        scores = self.static.table.encode(texts) @ self._coef + self.static.intercept
        scores[:, self._constant] = self.static.constant[self._constant]
        return [fold_blend(row, self.static.blend_coef, self.static.blend_intercept, embedding)
                for row, embedding in zip(rows, scores, strict=True)]


def fold_blend(row: Parts, blend_coef: np.ndarray, blend_intercept: np.ndarray, embedding_scores: np.ndarray) -> Parts:
    """``row`` (a linear model's parts) inside the blend ``blend_coef[g] @ [text score, embedding
    score] + blend_intercept[g]``: each part x ``w_text``, the bias on the intercept, and the
    embedding model's score x ``w_embedding`` as the embedding part."""
    w_text, w_embedding = blend_coef[:, 0], blend_coef[:, 1]
    embedding = w_embedding * embedding_scores
    return Parts(
        row.terms,
        row.weights * w_text[:, None],
        row.other * w_text,
        w_text * row.intercept + blend_intercept,
        embedding,
        row.scores * w_text + embedding + blend_intercept,
    )


class _ItemReader:
    """One item's text, read lazily: where its words appear, which words hold each n-gram."""

    def __init__(self, plot: str, title: str, year: float):
        self._texts = {"plot": plot, "title": title}
        self._year = year
        self._surfaces: dict[str, dict[str, str]] = {}
        self._owners: dict[int, dict[int, Counter]] = {}

    def term(self, field: str, word: str) -> Term:
        """``word`` (as a vectorizer saw it, lower-cased) as it appears in ``field``'s text, or
        :data:`OTHER` when the text does not hold it."""
        surfaces = self._surfaces.get(field)
        if surfaces is None:
            surfaces = self._surfaces[field] = _surface_forms(self._texts[field])
        if word not in surfaces:
            surfaces[word] = _find(word, self._texts[field])
        found = surfaces[word]
        return (field, found) if found else OTHER

    def year_term(self) -> Term:
        return OTHER if math.isnan(self._year) else (YEAR, _year_text(self._year))

    def char_owners(self, block: Block) -> dict[int, Counter]:
        """The block's column -> how often it occurs in each word of the text, counted the way a
        ``char_wb`` vectorizer counts (each whitespace-separated word padded with spaces)."""
        key = id(block)
        if key not in self._owners:
            vectorizer = block.vectorizer
            text = self._texts[block.column]
            words = Counter((text.lower() if vectorizer.lowercase else text).split())
            owners: dict[int, Counter] = defaultdict(Counter)
            for word, times in words.items():
                owner = word.strip(string.punctuation) or word
                columns, counts = np.unique(vectorizer._char_wb_word(word), return_counts=True)
                for column, count in zip(columns.tolist(), counts.tolist(), strict=True):
                    owners[column][owner] += times * count
            self._owners[key] = owners
        return self._owners[key]


def _surface_forms(text: str) -> dict[str, str]:
    """Lower-cased word -> the word as it first appears in ``text``: whitespace-separated words
    without their outer punctuation (as a ``char_wb`` vectorizer's words are read here) and
    runs of word characters (a word vectorizer's tokens)."""
    forms: dict[str, str] = {}
    for chunk in text.split():
        for word in (chunk.strip(string.punctuation) or chunk, *_WORD_RUN.findall(chunk)):
            forms.setdefault(word.lower(), word)
    return forms


def _find(word: str, text: str) -> str:
    """``word`` as it appears in ``text`` as a word, in any case, else ``""``."""
    found = re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE)
    return found.group() if found else ""


def _year_text(year: float) -> str:
    return str(int(year)) if year.is_integer() else str(year)
