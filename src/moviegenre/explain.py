"""Why a model gave a plot its top genres: the words and n-grams that pushed each genre up or down.

The explanation comes from the model's linear part, a pipeline of feature extractors (TF-IDF
n-grams, ...) followed by one linear classifier per genre. For one plot, a genre's score (its
logit) is exactly ``intercept + sum(feature value x coefficient)``; every nonzero product is
one feature's contribution, so the contributions and the intercept add up to the score.
Character n-grams are shared out among the words they occur in, so the terms a reader sees are
the plot's words and word n-grams (plus title words and the decade), each with everything it
contributed, and the totals are unchanged.

For a ``hybrid`` model the linear part is its text model, and the explanation adds the blend
that turns it into the final score: ``final = w_text x text score + w_embedding x embedding
score + bias``, which also adds up exactly. Terms therefore move the final logit by
``w_text x contribution``; the embedding part has no per-word reading.
"""

from __future__ import annotations

import re
import string
import weakref
from collections import Counter
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import expit

from .errors import ModelError, UsageError
from .items import to_frame
from .predict import GenreModel

_NAMES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ONE_HOT_PREFIX = re.compile(r"^x\d+_")


class LinearPart:
    """A fitted feature pipeline plus one linear classifier per genre, as matrices."""

    def __init__(self, pipeline: Any):
        steps = getattr(pipeline, "steps", None)
        if not steps or len(steps) < 2:
            raise ModelError("the model has no feature pipeline followed by a linear classifier")
        self.features = pipeline[:-1]
        self.coef, self.intercept = _linear_weights(pipeline[-1])
        if pipeline not in _NAMES:
            _NAMES[pipeline] = feature_names(self.features)
        self.names = _NAMES[pipeline]
        if self.coef.shape[1] != len(self.names):
            raise ModelError("the linear classifier's weights do not match its features")
        self.blocks = _blocks(self.features, len(self.names))

    def contributions(self, frame) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray]:
        """For the single row of ``frame``: the terms as (source column, term), a (genres x
        terms) matrix of their contributions, and each genre's score (intercept + row sum).

        A feature's contribution is its value x its coefficient. Character n-grams are handed
        to the words they occur in (in proportion to occurrences), so a word's contribution is
        its own n-grams' plus its word features'; every total is kept exactly.
        """
        row = sparse.csr_matrix(self.features.transform(frame), dtype=float)
        if row.shape[0] != 1:
            raise ValueError("explain one plot at a time")
        products = self.coef[:, row.indices] * row.data[None, :]
        terms: dict[tuple[str, str], int] = {}
        owners, shares, features = [], [], []
        for position, feature in enumerate(row.indices):
            for term, share in self._terms_of(int(feature), frame):
                owners.append(terms.setdefault(term, len(terms)))
                shares.append(share)
                features.append(position)
        mapping = sparse.csr_matrix((shares, (features, owners)),
                                    shape=(len(row.indices), len(terms)))
        contributions = np.asarray(mapping.T @ products.T).T.reshape(len(self.coef), len(terms))
        scores = self.intercept + products.sum(axis=1)
        return list(terms), contributions, scores

    def _terms_of(self, feature: int, frame) -> list[tuple[tuple[str, str], float]]:
        block, name = _split_name(str(self.names[feature]))
        info = self.blocks.get(block)
        if info is None:
            return [((block, name), 1.0)]
        transformer, column = info
        source = column if isinstance(column, str) else ",".join(map(str, column))
        if getattr(transformer, "analyzer", None) == "char_wb" and isinstance(column, str):
            words = _words_with_ngram(transformer, str(frame[column].iloc[0]), name)
            total = sum(words.values())
            if total:
                return [((source, word), count / total) for word, count in words.items()]
        return [((source, _ONE_HOT_PREFIX.sub("", name)), 1.0)]


def _split_name(name: str) -> tuple[str, str]:
    block, _, term = name.partition("__")
    return (block, term) if term else ("", name)


def _blocks(features: Any, width: int) -> dict[str, tuple[Any, Any]]:
    """Block name -> (fitted transformer, the column it reads), for a column transformer."""
    steps = [step for _, step in getattr(features, "steps", [(None, features)])]
    columns = next((s for s in steps if hasattr(s, "transformers_")), None)
    if columns is None:
        return {}
    return {name: (transformer, column) for name, transformer, column in columns.transformers_
            if name != "remainder"}


@lru_cache(maxsize=4096)
def _word_ngrams(analyzer: Any, word: str) -> Counter:
    return Counter(analyzer(word))


def _words_with_ngram(vectorizer: Any, text: str, ngram: str) -> Counter:
    """How often ``ngram`` occurs in each word of ``text``, as a ``char_wb`` vectorizer, which
    pads each whitespace-separated word with spaces, counts it."""
    words = Counter(vectorizer.build_preprocessor()(text).split())
    analyzer = vectorizer.build_analyzer()
    found: Counter = Counter()
    for word, times in words.items():
        count = _word_ngrams(analyzer, word)[ngram] if ngram.strip() in word else 0
        if count:
            found[word.strip(string.punctuation) or word] += times * count
    return found


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
        raise ModelError("the model's features cannot be named, so they cannot be explained")
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
            raise ModelError(f"{type(classifier).__name__} has no linear weights to explain")
        return _dense(coef), np.asarray(classifier.intercept_, dtype=float).reshape(-1)
    width = next(
        (_dense(e.coef_).shape[1] for e in estimators if hasattr(e, "coef_")), None
    )
    if width is None:
        raise ModelError(f"{type(classifier).__name__} holds no linear classifier to explain")
    coef = np.zeros((len(estimators), width))
    intercept = np.zeros(len(estimators))
    for g, estimator in enumerate(estimators):
        if hasattr(estimator, "coef_"):
            coef[g] = _dense(estimator.coef_).reshape(-1)
            intercept[g] = float(np.asarray(estimator.intercept_).reshape(-1)[0])
        elif hasattr(estimator, "y_"):  # a genre absent from training: a constant score
            intercept[g] = float(np.asarray(estimator.decision_function(np.zeros((1, 1))))[0])
        else:
            raise ModelError(f"{type(estimator).__name__} has no linear weights to explain")
    return coef, intercept


def _dense(matrix) -> np.ndarray:
    return np.asarray(matrix.toarray() if sparse.issparse(matrix) else matrix, dtype=float)


def linear_part_of(model: GenreModel) -> tuple[LinearPart, Any]:
    """The linear part of ``model`` and, for a hybrid, the hybrid estimator (else ``None``)."""
    from .embeddings import HybridClassifier

    pipeline = model.pipeline
    if isinstance(pipeline, HybridClassifier):
        return LinearPart(pipeline.text_model_), pipeline
    try:
        return LinearPart(pipeline), None
    except ModelError as exc:
        raise ModelError(
            f"model kind {model.kind!r} cannot be explained: {exc}; explanations need a "
            "linear or hybrid model"
        ) from None


def explain(
    model: GenreModel, plot: str, title: str = "", top_genres: int = 3, top_terms: int = 8
) -> dict[str, Any]:
    """Explain ``model``'s top genres for one plot (JSON-serialisable).

    Per genre (most probable first): the final probability and score (logit); under
    ``linear`` the linear part's score, intercept, the ``top_terms`` terms that pushed it up
    and down most, and ``other_terms``, the sum of the remaining contributions, so that
    ``intercept + sum(up) + sum(down) + other_terms == linear.score``. For a hybrid,
    ``blend`` gives the parts of the final score: ``linear.weight x linear.score +
    embedding.weight x embedding.score + bias == score``.
    """
    if top_genres < 1 or top_terms < 0:
        raise UsageError("top_genres must be at least 1 and top_terms at least 0")
    frame = to_frame([{"plot": plot, "title": title}])
    part, hybrid = linear_part_of(model)
    terms, contributions, linear_scores = part.contributions(frame)
    if hybrid is not None:
        base = hybrid.base_scores(frame)[0]
        final_scores = np.einsum("gk,gk->g", base, hybrid.blend_coef_) + hybrid.blend_intercept_
    else:
        base, final_scores = None, linear_scores
    proba = model.predict_proba(frame)[0]
    order = np.argsort(-proba, kind="stable")[: min(top_genres, len(proba))]
    genres = []
    for g in order:
        entry = {
            "genre": model.genres[g],
            "probability": float(proba[g]),
            "score": float(final_scores[g]),
            "linear": _linear_entry(terms, contributions[g], float(part.intercept[g]),
                                    float(linear_scores[g]), top_terms),
        }
        if hybrid is not None:
            entry["blend"] = _blend_entry(base[g], hybrid.blend_coef_[g], hybrid.blend_intercept_[g])
        genres.append(entry)
    return {
        "model": {"id": model.id, "kind": model.kind},
        "explains": "hybrid's linear text part and its blend" if hybrid is not None
        else "linear model",
        "genres": genres,
    }


def _linear_entry(terms: list[tuple[str, str]], values: np.ndarray, intercept: float,
                  score: float, top_terms: int) -> dict[str, Any]:
    ranked = np.argsort(-values, kind="stable")
    up = [int(i) for i in ranked[:top_terms] if values[i] > 0]
    down = [int(i) for i in ranked[::-1][:top_terms] if values[i] < 0]
    rest = np.ones(len(values), dtype=bool)
    rest[up + down] = False

    def term(i: int) -> dict[str, Any]:
        source, text = terms[i]
        return {"term": text, "source": source, "contribution": float(values[i])}

    return {
        "score": score,
        "probability": float(expit(score)),
        "intercept": intercept,
        "up": [term(i) for i in up],
        "down": [term(i) for i in down],
        "other_terms": float(values[rest].sum()),
    }


def _blend_entry(base: np.ndarray, coef: np.ndarray, bias: float) -> dict[str, Any]:
    return {
        "linear": {"score": float(base[0]), "weight": float(coef[0]),
                   "contribution": float(coef[0] * base[0])},
        "embedding": {"score": float(base[1]), "weight": float(coef[1]),
                      "contribution": float(coef[1] * base[1])},
        "bias": float(bias),
    }


def format_explanation(result: dict[str, Any]) -> str:
    """An :func:`explain` result as text for a terminal."""
    lines = [f"model {result['model']['id']} ({result['explains']})"]
    for entry in result["genres"]:
        linear = entry["linear"]
        lines.append("")
        lines.append(f"{entry['genre']}: probability {entry['probability']:.3f} "
                     f"(score {entry['score']:+.3f})")
        if "blend" in entry:
            blend = entry["blend"]
            lines.append(
                f"  score = {blend['linear']['weight']:.2f} x text {blend['linear']['score']:+.3f}"
                f" + {blend['embedding']['weight']:.2f} x embedding "
                f"{blend['embedding']['score']:+.3f} {blend['bias']:+.3f}"
            )
        lines.append(f"  text score {linear['score']:+.3f} = intercept {linear['intercept']:+.3f}"
                     f" + terms below + other terms {linear['other_terms']:+.3f}")
        for label, terms in (("up", linear["up"]), ("down", linear["down"])):
            shown = ", ".join(f"{t['term']} {t['contribution']:+.3f}" for t in terms) or "none"
            lines.append(f"  {label:>4}: {shown}")
    return "\n".join(lines)
