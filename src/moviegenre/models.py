"""The model zoo: one registered builder per model kind.

Every kind is a scikit-learn estimator that takes a DataFrame with columns ``plot``, ``title``
and ``year`` and whose ``predict_proba`` returns an (n, 24) array in genre order. Register a
new kind with :func:`register`; ``moviegenre train --kind NAME`` then finds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import StackingClassifier
from sklearn.feature_extraction import DictVectorizer
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.naive_bayes import ComplementNB, MultinomialNB
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, Normalizer

from .text import seed_tokenize, to_dense, word_counts


@dataclass(frozen=True)
class ModelKind:
    """How to build one kind of model, and what its serialised form may contain."""

    name: str
    description: str
    build: Callable[..., Any]
    defaults: dict[str, Any] = field(default_factory=dict)
    #: Types beyond scikit-learn's and numpy's that the serialised pipeline may hold.
    trusted_types: tuple[str, ...] = ()


_KINDS: dict[str, ModelKind] = {}


def register(kind: ModelKind) -> ModelKind:
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> ModelKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise ValueError(f"unknown model kind {name!r}; choose one of {sorted(_KINDS)}") from None


def kind_names() -> list[str]:
    return sorted(_KINDS)


def build_estimator(name: str, **params: Any):
    kind = get_kind(name)
    unknown = set(params) - set(kind.defaults)
    if unknown:
        raise ValueError(f"model kind {name!r} has no parameter(s) {sorted(unknown)}")
    return kind.build(**{**kind.defaults, **params})


def all_trusted_types() -> set[str]:
    return {t for kind in _KINDS.values() for t in kind.trusted_types}


# --- seed: the original system's pipeline, reproduced with default parameters -------------


def build_seed() -> Pipeline:
    """CountVectorizer + TfidfVectorizer + DictVectorizer over the plot, dense, L2-normalised,
    then a stack of multinomial and complement naive Bayes under a logistic regression, one per
    genre: the original system's pipeline (its memory use and slowness included)."""
    features = ColumnTransformer(
        [
            ("count", CountVectorizer(tokenizer=seed_tokenize, token_pattern=None), "plot"),
            ("tfidf", TfidfVectorizer(tokenizer=seed_tokenize, token_pattern=None), "plot"),
            (
                "dict",
                make_pipeline(FunctionTransformer(word_counts), DictVectorizer()),
                "plot",
            ),
        ]
    )
    stack = StackingClassifier(
        estimators=[("mnb", MultinomialNB()), ("cnb", ComplementNB())],
        final_estimator=LogisticRegression(),
    )
    return Pipeline(
        [
            ("features", features),
            ("dense", FunctionTransformer(to_dense, accept_sparse=True)),
            ("normalise", Normalizer()),
            ("classifier", OneVsRestClassifier(stack)),
        ]
    )


register(
    ModelKind(
        name="seed",
        description="Faithful reproduction of the original serverless pipeline (baseline; slow).",
        build=build_seed,
        trusted_types=(
            "moviegenre.text.seed_tokenize",
            "moviegenre.text.word_counts",
            "moviegenre.text.to_dense",
        ),
    )
)


# --- linear: the default, fast and strong --------------------------------------------------


def build_linear(*, C: float, ngram_max: int, min_df: int) -> Pipeline:
    """Word n-gram TF-IDF of the plot, one logistic regression per genre."""
    features = ColumnTransformer(
        [
            (
                "plot_words",
                TfidfVectorizer(
                    sublinear_tf=True,
                    ngram_range=(1, ngram_max),
                    min_df=min_df,
                    max_df=0.9,
                ),
                "plot",
            ),
        ]
    )
    classifier = OneVsRestClassifier(LogisticRegression(C=C, solver="liblinear", max_iter=1000))
    return Pipeline([("features", features), ("classifier", classifier)])


register(
    ModelKind(
        name="linear",
        description="TF-IDF n-grams + one-vs-rest logistic regression (default; fast, strong).",
        build=build_linear,
        defaults={"C": 4.0, "ngram_max": 2, "min_df": 2},
    )
)
