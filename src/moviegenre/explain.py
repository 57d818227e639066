"""Why a model gave a movie its top genres: the words of its plot and title that pushed each
genre's score up or down.

An explanation is a list with one entry per top genre, most probable first (the library, the
CLI and the HTTP API all give this shape)::

    {"genre": "Western", "probability": 0.93, "score": 3.232, "intercept": -2.061,
     "terms": [{"term": "outlaw", "field": "plot", "weight": 1.402}, ...],
     "other_terms": 1.700, "embedding": null}

``probability`` is the model's own, as :meth:`~moviegenre.predict.GenreModel.predict_proba`
gives it (calibrated, where the model is). ``score`` is the genre's logit before calibration,
and its parts add up to it exactly: ``intercept + sum(weight of terms) + other_terms +
(embedding or 0) == score``. ``terms`` are the strongest contributions by absolute weight,
strongest first, and ``other_terms`` the sum of all the others.

Where the parts come from: the model's linear part is a pipeline of feature extractors followed
by one linear classifier per genre, so a genre's logit is ``intercept + sum(feature value x
coefficient)``. Each product is handed to the words it came from: a word's own feature to the
word; a word pair ("killed brother", once stop words are dropped) half to each word; a
character n-gram to the words it occurs in, in proportion to occurrences; the decade to the
year. So a term is a word as it appears in the request's plot or title (``field`` says which),
or the year as sent (``field`` ``"year"``). What cannot be handed to one (a word the text does
not hold as such, the decade of an unknown year) counts in ``other_terms``.

For a ``hybrid`` model the linear part is its text model, and the blend ``w_text x text score +
w_embedding x embedding score + bias`` is folded in: ``intercept`` is ``w_text x text intercept
+ bias``, each weight and ``other_terms`` are multiplied by ``w_text``, and ``embedding`` is
``w_embedding x embedding score``. For a linear model ``embedding`` is ``None``.
"""

from __future__ import annotations

import math
import re
import string
import weakref
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from scipy import sparse

from .errors import ModelError, UsageError
from .items import Item, to_frame
from .predict import GenreModel

if TYPE_CHECKING:
    import pandas as pd

#: Genres explained unless asked otherwise, and terms shown per genre.
EXPLAIN_TOP = 3
EXPLAIN_TERMS = 10

#: A term: the field it comes from (``plot``, ``title`` or ``year``) and its text there.
Term = tuple[str, str]
#: Where a contribution that no word or year can take is collected (into ``other_terms``).
OTHER: Term = ("", "")
TEXT_FIELDS = ("plot", "title")
YEAR = "year"

_PARTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_WORD_RUN = re.compile(r"\w+")


class NotExplainable(ModelError):
    """The model has no linear part to read an explanation from (the ``seed`` kind, say)."""


@dataclass(frozen=True)
class _Block:
    """How the features of one block of a column transformer map to terms."""

    how: str  # "words" (word n-grams), "chars" (char_wb n-grams), "year", or "other"
    field: str = ""
    vectorizer: Any = None


class RowContributions(NamedTuple):
    """One row's contributions to every genre's logit, from the linear part."""

    terms: list[Term]
    weights: np.ndarray  # (genres, terms)
    unattributed: np.ndarray  # (genres,): what no term could take
    scores: np.ndarray  # (genres,): intercept + weights.sum(axis=1) + unattributed


class LinearPart:
    """A fitted feature pipeline plus one linear classifier per genre, as matrices."""

    def __init__(self, pipeline: Any):
        steps = getattr(pipeline, "steps", None)
        if not steps or len(steps) < 2:
            raise NotExplainable("the model has no feature pipeline followed by a linear classifier")
        self.features = pipeline[:-1]
        self.coef, self.intercept = _linear_weights(pipeline[-1])
        self.names = feature_names(self.features)
        if self.coef.shape[1] != len(self.names):
            raise NotExplainable("the linear classifier's weights do not match its features")
        blocks = _blocks(self.features)
        split = [_split_name(str(name)) for name in self.names]
        self._blocks = [blocks.get(block, _Block("other")) for block, _ in split]
        self._names = [name for _, name in split]

    def contributions(self, frame: pd.DataFrame) -> list[RowContributions]:
        """Per row of ``frame`` (checked items), every term's contribution to every genre.

        A feature's contribution is its value x its coefficient, handed to terms as the
        module's docstring says; every total is kept exactly.
        """
        matrix = sparse.csr_matrix(self.features.transform(frame), dtype=float)
        return [self._row(matrix[i], frame.iloc[i]) for i in range(matrix.shape[0])]

    def _row(self, row: sparse.csr_matrix, record: pd.Series) -> RowContributions:
        products = self.coef[:, row.indices] * row.data[None, :]
        reader = _RowReader(record)
        terms: dict[Term, int] = {OTHER: 0}
        owners, shares, positions = [], [], []
        for position, feature in enumerate(row.indices):
            for term, share in self._terms_of(int(feature), reader):
                owners.append(terms.setdefault(term, len(terms)))
                shares.append(share)
                positions.append(position)
        mapping = sparse.csr_matrix((shares, (positions, owners)), shape=(len(row.indices), len(terms)))
        weights = np.asarray((mapping.T @ products.T).T).reshape(len(self.coef), len(terms))
        scores = self.intercept + products.sum(axis=1)
        return RowContributions(list(terms)[1:], weights[:, 1:], weights[:, 0], scores)

    def _terms_of(self, feature: int, reader: _RowReader) -> list[tuple[Term, float]]:
        block, name = self._blocks[feature], self._names[feature]
        if block.how == "words":
            words = name.split(" ")
            return [(reader.term(block.field, word), 1 / len(words)) for word in words]
        if block.how == "chars":
            words = reader.char_owners(block).get(name)
            total = sum(words.values()) if words else 0
            if total:
                return [(reader.term(block.field, word), count / total) for word, count in words.items()]
        if block.how == "year":
            return [(reader.year_term(), 1.0)]
        return [(OTHER, 1.0)]


class _RowReader:
    """One item's text, read lazily: where its words appear, which words hold each n-gram."""

    def __init__(self, record: pd.Series):
        self.record = record
        self._surfaces: dict[str, dict[str, str]] = {}
        self._owners: dict[int, dict[str, Counter]] = {}

    def _text(self, field: str) -> str:
        value = self.record.get(field)
        return value if isinstance(value, str) else ""

    def term(self, field: str, word: str) -> Term:
        """``word`` (as a vectorizer saw it, lower-cased) as it appears in ``field``'s text, or
        :data:`OTHER` when the text does not hold it."""
        surfaces = self._surfaces.get(field)
        if surfaces is None:
            surfaces = self._surfaces[field] = _surface_forms(self._text(field))
        if word not in surfaces:
            surfaces[word] = _find(word, self._text(field))
        found = surfaces[word]
        return (field, found) if found else OTHER

    def year_term(self) -> Term:
        year = self.record.get(YEAR)
        if year is None or (isinstance(year, float) and math.isnan(year)):
            return OTHER
        return (YEAR, _year_text(float(year)))

    def char_owners(self, block: _Block) -> dict[str, Counter]:
        """n-gram -> how often it occurs in each word of the block's text, counted the way a
        ``char_wb`` vectorizer counts (each whitespace-separated word padded with spaces)."""
        key = id(block)
        if key not in self._owners:
            vectorizer = block.vectorizer
            analyzer = vectorizer.build_analyzer()
            owners: dict[str, Counter] = defaultdict(Counter)
            words = Counter(vectorizer.build_preprocessor()(self._text(block.field)).split())
            for word, times in words.items():
                owner = word.strip(string.punctuation) or word
                for ngram, count in Counter(analyzer(word)).items():
                    owners[ngram][owner] += times * count
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


def _split_name(name: str) -> tuple[str, str]:
    block, _, term = name.partition("__")
    return (block, term) if term else ("", name)


def _blocks(features: Any) -> dict[str, _Block]:
    """Block name -> how its features map to terms, for a column transformer's blocks."""
    steps = [step for _, step in getattr(features, "steps", [(None, features)])]
    columns = next((s for s in steps if hasattr(s, "transformers_")), None)
    if columns is None:
        return {}
    return {name: _block(transformer, column) for name, transformer, column in columns.transformers_
            if name != "remainder"}


def _block(transformer: Any, column: Any) -> _Block:
    read = [column] if isinstance(column, str) else list(column) if isinstance(column, list | tuple) else []
    if read == [YEAR]:
        return _Block("year", YEAR)
    if len(read) == 1 and read[0] in TEXT_FIELDS and hasattr(transformer, "build_analyzer"):
        how = {"word": "words", "char_wb": "chars"}.get(getattr(transformer, "analyzer", None), "other")
        return _Block(how, read[0], transformer)
    return _Block("other")


def feature_names(features: Any) -> np.ndarray:
    """Output feature names of a fitted feature pipeline, as ``block__name``.

    Blocks of a column transformer that cannot name their outputs (a function transformer
    before a one-hot encoder, say) are named by their last step that can, else by position.
    """
    try:
        return np.asarray(features.get_feature_names_out(), dtype=object)
    except (AttributeError, ValueError, TypeError):
        pass
    steps = [step for _, step in getattr(features, "steps", [(None, features)])]
    columns = next((s for s in steps if hasattr(s, "output_indices_")), None)
    if columns is None or len(steps) != 1:
        raise NotExplainable("the model's features cannot be named, so they cannot be explained")
    names = np.empty(sum(s.stop - s.start for s in columns.output_indices_.values()), dtype=object)
    for block, transformer, _ in columns.transformers_:
        where = columns.output_indices_.get(block, slice(0, 0))
        if where.stop > where.start:
            names[where] = [f"{block}__{name}" for name in _block_names(transformer, where)]
    return names


def _block_names(transformer: Any, where: slice) -> list[str]:
    for candidate in (transformer, *reversed([s for _, s in getattr(transformer, "steps", [])])):
        try:
            names = list(candidate.get_feature_names_out())
        except (AttributeError, ValueError, TypeError):
            continue
        if len(names) == where.stop - where.start:
            return [str(n) for n in names]
    return [str(i) for i in range(where.stop - where.start)]


def _linear_weights(classifier: Any) -> tuple[np.ndarray, np.ndarray]:
    """(genres x features) coefficients and per-genre intercepts of a one-vs-rest (or
    multi-output) set of linear classifiers, or of one linear model with a coefficient row per
    genre."""
    estimators = getattr(classifier, "estimators_", None)
    if estimators is None:
        coef = getattr(classifier, "coef_", None)
        if coef is None:
            raise NotExplainable(f"{type(classifier).__name__} has no linear weights to explain")
        return _dense(coef), np.asarray(classifier.intercept_, dtype=float).reshape(-1)
    width = next(
        (_dense(e.coef_).shape[1] for e in estimators if hasattr(e, "coef_")), None
    )
    if width is None:
        raise NotExplainable(f"{type(classifier).__name__} holds no linear classifier to explain")
    coef = np.zeros((len(estimators), width))
    intercept = np.zeros(len(estimators))
    for g, estimator in enumerate(estimators):
        if hasattr(estimator, "coef_"):
            coef[g] = _dense(estimator.coef_).reshape(-1)
            intercept[g] = float(np.asarray(estimator.intercept_).reshape(-1)[0])
        elif hasattr(estimator, "y_"):  # a genre absent from training: a constant score
            intercept[g] = float(np.asarray(estimator.decision_function(np.zeros((1, 1))))[0])
        else:
            raise NotExplainable(f"{type(estimator).__name__} has no linear weights to explain")
    return coef, intercept


def _dense(matrix) -> np.ndarray:
    return np.asarray(matrix.toarray() if sparse.issparse(matrix) else matrix, dtype=float)


def linear_part_of(model: GenreModel) -> tuple[LinearPart, Any]:
    """The linear part of ``model`` and, for a hybrid, the hybrid estimator (else ``None``).

    Reads ``model.pipeline``, which deserialises the model file on first use (seconds): call
    it off a server's event loop. Raises :class:`NotExplainable` for a model without one.
    """
    from .embeddings import HybridClassifier

    pipeline = model.pipeline
    hybrid = pipeline if isinstance(pipeline, HybridClassifier) else None
    linear = hybrid.text_model_ if hybrid is not None else pipeline
    part = _PARTS.get(linear)
    if part is None:
        try:
            part = _PARTS[linear] = LinearPart(linear)
        except NotExplainable as exc:
            raise NotExplainable(
                f"model kind {model.kind!r} cannot be explained: {exc}; explanations need a "
                "linear or hybrid model"
            ) from None
    return part, hybrid


class _Blend(NamedTuple):
    """How each genre's final logit is made of the linear part's, for one row."""

    scale: np.ndarray  # (genres,): multiplies the linear part's intercept and contributions
    bias: np.ndarray  # (genres,): added to the intercept
    embedding: np.ndarray | None  # (genres,): the embedding part, or None for a linear model
    scores: np.ndarray  # (genres,): the final logits


def _blends(hybrid: Any, frame: pd.DataFrame, rows: list[RowContributions], genres: int) -> list[_Blend]:
    if hybrid is None:
        return [_Blend(np.ones(genres), np.zeros(genres), None, row.scores) for row in rows]
    base = hybrid.base_scores(frame)  # (rows, genres, [text, embedding])
    coef, bias = hybrid.blend_coef_, hybrid.blend_intercept_
    finals = np.einsum("ngk,gk->ng", base, coef) + bias
    return [_Blend(coef[:, 0], bias, coef[:, 1] * base[i, :, 1], finals[i]) for i in range(len(rows))]


def explain_items(
    model: GenreModel,
    items: Iterable[Item] | pd.DataFrame,
    *,
    top_genres: int = EXPLAIN_TOP,
    top_terms: int = EXPLAIN_TERMS,
    proba: np.ndarray | None = None,
    max_plot_chars: int | None = None,
) -> list[list[dict[str, Any]]]:
    """Per item, the explanation of ``model``'s ``top_genres`` most probable genres, each with
    its ``top_terms`` strongest terms (JSON-serialisable; the shape is the module's docstring's).

    ``items`` are what :meth:`~moviegenre.predict.GenreModel.predict_proba` takes; ``proba``
    its answer for them, where the caller already has it; ``max_plot_chars`` as there. Raises
    :class:`NotExplainable` for a model without a linear part and
    :class:`~moviegenre.errors.UsageError` for a bad count.
    """
    genres = len(model.genres)
    if not 1 <= top_genres <= genres:
        raise UsageError(f"top_genres must be between 1 and {genres}, not {top_genres}")
    if top_terms < 0:
        raise UsageError(f"top_terms must be at least 0, not {top_terms}")
    frame = to_frame(items, max_plot_chars)
    part, hybrid = linear_part_of(model)
    rows = part.contributions(frame)
    if proba is None:
        proba = model.predict_proba(frame, max_plot_chars=max_plot_chars)
    explanations = []
    for row, blend, probabilities in zip(rows, _blends(hybrid, frame, rows, genres), proba, strict=True):
        order = np.argsort(-probabilities, kind="stable")[:top_genres]
        explanations.append([_entry(model.genres[g], float(probabilities[g]), part, row, blend, int(g), top_terms)
                             for g in order])
    return explanations


def explain(
    model: GenreModel,
    plot: str,
    title: str = "",
    year: float | str | None = None,
    *,
    top_genres: int = EXPLAIN_TOP,
    top_terms: int = EXPLAIN_TERMS,
) -> list[dict[str, Any]]:
    """The explanation of ``model``'s top genres for one movie (see :func:`explain_items`)."""
    item = {"plot": plot, "title": title, "year": year}
    return explain_items(model, [item], top_genres=top_genres, top_terms=top_terms)[0]


def _entry(genre: str, probability: float, part: LinearPart, row: RowContributions, blend: _Blend, g: int,
           top_terms: int) -> dict[str, Any]:
    weights = row.weights[g] * blend.scale[g]
    strongest = np.argsort(-np.abs(weights), kind="stable")[:top_terms]
    shown = [int(i) for i in strongest if weights[i] != 0]
    rest = np.ones(len(weights), dtype=bool)
    rest[shown] = False
    return {
        "genre": genre,
        "probability": probability,
        "score": float(blend.scores[g]),
        "intercept": float(blend.scale[g] * part.intercept[g] + blend.bias[g]),
        "terms": [{"term": row.terms[i][1], "field": row.terms[i][0], "weight": float(weights[i])} for i in shown],
        "other_terms": float(weights[rest].sum() + blend.scale[g] * row.unattributed[g]),
        "embedding": None if blend.embedding is None else float(blend.embedding[g]),
    }


def format_explanation(model: dict[str, str], explanation: list[dict[str, Any]]) -> str:
    """An explanation as text for a terminal; ``model`` is ``{"id": ..., "kind": ...}``."""
    lines = [f"model {model['id']} ({model['kind']})"]
    for entry in explanation:
        terms = entry["terms"]
        parts = [f"intercept {entry['intercept']:+.3f}", f"terms below {sum(t['weight'] for t in terms):+.3f}",
                 f"other terms {entry['other_terms']:+.3f}"]
        if entry["embedding"] is not None:
            parts.append(f"embedding {entry['embedding']:+.3f}")
        lines += ["", f"{entry['genre']}: probability {entry['probability']:.3f} (score {entry['score']:+.3f})",
                  f"  score {entry['score']:+.3f} = " + " + ".join(parts)]
        for label, chosen in (("up", [t for t in terms if t["weight"] > 0]),
                              ("down", [t for t in terms if t["weight"] < 0])):
            shown = ", ".join(_term_text(t) for t in chosen) or "none"
            lines.append(f"  {label:>4}: {shown}")
    return "\n".join(lines)


def _term_text(term: dict[str, Any]) -> str:
    where = "" if term["field"] == "plot" else f" ({term['field']})"
    return f"{term['term']}{where} {term['weight']:+.3f}"
