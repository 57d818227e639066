"""Why a model gave a movie its top genres: the words of its plot and title that pushed each
genre's score up or down.

An explanation is a list with one entry per top genre, most probable first (the library, the
CLI and the HTTP API all give this shape)::

    {"genre": "Western", "probability": 0.93, "score": 3.232, "intercept": -2.061,
     "terms": [{"term": "outlaw", "field": "plot", "weight": 1.402}, ...],
     "other_terms": 1.700, "embedding": null}

``probability`` is the model's own, as :meth:`~moviegenre.model.genre_model.GenreModel.predict_proba`
gives it (calibrated, where the model is). ``score`` is the genre's logit before calibration,
and its parts add up to it exactly: ``intercept + sum(weight of terms) + other_terms +
(embedding or 0) == score``. ``terms`` are the strongest contributions by absolute weight,
strongest first, and ``other_terms`` the sum of all the others.

Where the parts come from: the model's linear part is a set of feature extractors followed by
one linear classifier per genre, so a genre's logit is ``intercept + sum(feature value x
coefficient)``. Each product is handed to the words it came from: a word's own feature to the
word; a word pair ("killed brother", once stop words are dropped) half to each word; a
character n-gram to the words it occurs in, in proportion to occurrences; the decade to the
year. So a term is a word as it appears in the request's plot or title (``field`` says which),
or the year as sent (``field`` ``"year"``). What cannot be handed to one (a word the text does
not hold as such, the decade of an unknown year) counts in ``other_terms``.

For a ``static`` or ``hybrid`` model the linear part is its text model, and the blend ``w_text x
text score + w_embedding x embedding score + bias`` is folded in: ``intercept`` is ``w_text x
text intercept + bias``, each weight and ``other_terms`` are multiplied by ``w_text``, and
``embedding`` is ``w_embedding x embedding score``. For a linear model ``embedding`` is ``None``.

Each model kind says how it is explained (:attr:`ModelKind.explainer
<moviegenre.kinds.registry.ModelKind.explainer>`, an :class:`~moviegenre.fast.explain.Explainer`):
the linear and static kinds read their compiled form (:mod:`moviegenre.fast.explain`), so
explaining them needs neither scikit-learn nor ``model.skops``.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from moviegenre.core.errors import UsageError
from moviegenre.core.items import Columns, Item, to_columns
from moviegenre.fast.explain import Explainer, NotExplainable, Parts
from moviegenre.kinds.registry import get_kind, kind_names
from moviegenre.model.genre_model import WARM_ITEM, GenreModel

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EXPLAIN_TERMS", "EXPLAIN_TOP", "DeadlinePassed", "NotExplainable", "explain_items", "explainable_kinds",
           "explainer_of", "format_explanation", "has_explainer", "warm_explainer"]

#: Genres explained unless asked otherwise, and terms shown per genre.
EXPLAIN_TOP = 3
EXPLAIN_TERMS = 10

#: Where :func:`explain_items` is given a deadline, it explains this many items between two looks
#: at the clock: one, since one item takes milliseconds and a look microseconds.
ITEMS_BETWEEN_CHECKS = 1

#: Each model's explainer, or why it has none (kept too, so that a refusal costs nothing twice).
_EXPLAINERS: weakref.WeakKeyDictionary[GenreModel, Explainer | NotExplainable] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


class DeadlinePassed(TimeoutError):
    """:func:`explain_items` stopped at its ``deadline``: the caller has stopped waiting."""


def explainable_kinds() -> list[str]:
    """The registered model kinds that can be explained."""
    return [name for name in kind_names() if get_kind(name).explainer is not None]


def explainer_of(model: GenreModel) -> Explainer:
    """``model``'s explainer, as its kind builds it; built once per model and kept.

    Building reads what the kind's explainer needs: nothing more than the loaded compiled form
    for the linear and static kinds; a ``hybrid`` deserialises its pipeline (seconds), so call
    this off a server's event loop. Raises :class:`NotExplainable` for a kind that cannot explain.
    """
    explainer = _EXPLAINERS.get(model)
    if explainer is None:
        with _LOCK:
            explainer = _EXPLAINERS.get(model)
            if explainer is None:
                explainer = _EXPLAINERS[model] = _build(model)
    if isinstance(explainer, NotExplainable):
        raise NotExplainable(str(explainer))
    return explainer


def _build(model: GenreModel) -> Explainer | NotExplainable:
    build = get_kind(model.kind).explainer
    if build is None:
        return NotExplainable(f"model kind {model.kind!r} cannot be explained; explanations need a model of kind "
                              f"{_either(explainable_kinds())}")
    try:
        return build(model)
    except NotExplainable as exc:
        return NotExplainable(f"model kind {model.kind!r} cannot be explained: {exc}")


def has_explainer(model: GenreModel) -> bool:
    """Whether :func:`explainer_of` has built ``model``'s explainer (or found it has none) already."""
    return model in _EXPLAINERS


def warm_explainer(model: GenreModel) -> bool:
    """Build ``model``'s explainer and explain an example with it, as a server does before it
    says ready, so that no request is the first to find it broken (or to wait for it). False
    for a model that cannot be explained (:class:`NotExplainable`, which its requests are told);
    anything else that goes wrong is raised."""
    try:
        explain_items(model, [WARM_ITEM], top_genres=1)
    except NotExplainable:
        return False
    return True


def _either(names: list[str]) -> str:
    if not names:
        return "that has an explainer (none is registered)"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def explain_items(
    model: GenreModel,
    items: Iterable[Item] | pd.DataFrame,
    *,
    top_genres: int = EXPLAIN_TOP,
    top_terms: int = EXPLAIN_TERMS,
    proba: np.ndarray | None = None,
    max_plot_chars: int | None = None,
    deadline: float | None = None,
) -> list[list[dict[str, Any]]]:
    """Per item, the explanation of ``model``'s ``top_genres`` most probable genres, each with
    its ``top_terms`` strongest terms (JSON-serialisable; the shape is the module's docstring's).

    ``items`` are what :meth:`~moviegenre.model.genre_model.GenreModel.predict_proba` takes; ``proba``
    its answer for them, where the caller already has it; ``max_plot_chars`` as there. Past
    ``deadline`` (a :func:`time.monotonic` time), checked between items, it stops and raises
    :class:`DeadlinePassed`: a server's request that has timed out frees its worker. Raises
    :class:`NotExplainable` for a model kind that cannot be explained and
    :class:`~moviegenre.core.errors.UsageError` for a bad count. A model of fewer labels than
    ``top_genres`` explains them all.
    """
    if top_genres < 1:
        raise UsageError(f"top_genres must be at least 1, not {top_genres}")
    top_genres = min(top_genres, len(model.labels))
    if top_terms < 0:
        raise UsageError(f"top_terms must be at least 0, not {top_terms}")
    columns = to_columns(items, max_plot_chars)
    rows = _explain(explainer_of(model), columns, deadline)
    if proba is None:
        records = [{"plot": plot, "title": title, "year": year} for plot, title, year in zip(*columns, strict=True)]
        proba = model.predict_proba(records, max_plot_chars=max_plot_chars)
    explanations = []
    for row, probabilities in zip(rows, proba, strict=True):
        order = np.argsort(-probabilities, kind="stable")[:top_genres]
        explanations.append([_entry(model.genres[g], float(probabilities[g]), row, int(g), top_terms) for g in order])
    return explanations


def _explain(explainer: Explainer, columns: Columns, deadline: float | None) -> list[Parts]:
    if deadline is None:
        return explainer.explain(*columns)
    rows: list[Parts] = []
    plots, titles, years = columns
    for start in range(0, len(plots), ITEMS_BETWEEN_CHECKS):
        if time.monotonic() > deadline:
            raise DeadlinePassed(f"explaining stopped at its deadline, after {start} of {len(plots)} items")
        end = start + ITEMS_BETWEEN_CHECKS
        rows += explainer.explain(plots[start:end], titles[start:end], years[start:end])
    return rows


def _entry(genre: str, probability: float, row: Parts, g: int, top_terms: int) -> dict[str, Any]:
    weights = row.weights[g]
    strongest = np.argsort(-np.abs(weights), kind="stable")[:top_terms]
    shown = [int(i) for i in strongest if weights[i] != 0]
    rest = np.ones(len(weights), dtype=bool)
    rest[shown] = False
    return {
        "genre": genre,
        "probability": probability,
        "score": float(row.scores[g]),
        "intercept": float(row.intercept[g]),
        "terms": [{"term": row.terms[i][1], "field": row.terms[i][0], "weight": float(weights[i])} for i in shown],
        "other_terms": float(weights[rest].sum() + row.other[g]),
        "embedding": None if row.embedding is None else float(row.embedding[g]),
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
