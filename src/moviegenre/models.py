"""The model zoo: one registered builder per model kind.

Every kind is a scikit-learn estimator that takes a DataFrame with columns ``plot``, ``title``
and ``year`` and whose ``predict_proba`` returns an (n, 24) array in genre order. Register a
new kind with :func:`register`; ``moviegenre train --kind NAME`` then finds it.

Builders import scikit-learn themselves: the loader reads the registry (which types a kind's
model file may name) on every cold start, and importing scikit-learn takes a second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .encoders import DEFAULT_ENCODER
from .errors import UsageError

#: What ``moviegenre train`` and ``moviegenre serve`` (with no model yet) train: the most accurate
#: kind that scores a plot in under a millisecond without torch (see the README's models table).
DEFAULT_KIND = "static"


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
        raise UsageError(f"unknown model kind {name!r}; choose one of {sorted(_KINDS)}") from None


def kind_names() -> list[str]:
    return sorted(_KINDS)


def build_estimator(name: str, **params: Any):
    kind = get_kind(name)
    unknown = set(params) - set(kind.defaults)
    if unknown:
        raise UsageError(f"model kind {name!r} has no parameter(s) {sorted(unknown)}")
    return kind.build(**{**kind.defaults, **params})


def all_trusted_types() -> set[str]:
    return {t for kind in _KINDS.values() for t in kind.trusted_types}


# --- seed: the original system's pipeline, reproduced with default parameters -------------


def build_seed():
    """CountVectorizer + TfidfVectorizer + DictVectorizer over the plot, dense, L2-normalised,
    then a stack of multinomial and complement naive Bayes under a logistic regression, one per
    genre: the original system's pipeline (its memory use and slowness included)."""
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


# --- linear: TF-IDF, fast and strong ----------------------------------------------------------


def build_linear(
    *,
    C: float,
    ngram_max: int,
    min_df: int,
    char_max_features: int,
    title_weight: float,
    decade_weight: float,
    class_weight: str | None,
):
    """Word n-grams and character n-grams of the plot, title words and the decade, as one
    sparse TF-IDF vector, then one logistic regression per genre.

    Tuned by 5-fold cross-validation on the dev file (macro ROC AUC 0.891 -> 0.902): character
    n-grams catch word forms and rare names (+0.007), the decade ties Film-Noir, Western and War
    to their eras, the title helps only when down-weighted, and balanced class weights help the
    rare genres. The dual liblinear solver gives the same fit about 25x faster on this many
    features. Everything stays linear in one sparse vector, so the 24 regressions collapse into
    one coefficient matrix for fast inference.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    from .text import decade_of

    features = ColumnTransformer(
        [
            (
                "plot_words",
                TfidfVectorizer(
                    sublinear_tf=True,
                    ngram_range=(1, ngram_max),
                    min_df=min_df,
                    max_df=0.9,
                    stop_words="english",
                ),
                "plot",
            ),
            (
                "plot_chars",
                TfidfVectorizer(
                    sublinear_tf=True,
                    analyzer="char_wb",
                    ngram_range=(3, 5),
                    min_df=3,
                    max_df=0.9,
                    max_features=char_max_features,
                ),
                "plot",
            ),
            ("title_words", TfidfVectorizer(sublinear_tf=True), "title"),
            (
                "decade",
                make_pipeline(FunctionTransformer(decade_of), OneHotEncoder(handle_unknown="ignore")),
                ["year"],
            ),
        ],
        transformer_weights={
            "plot_words": 1.0,
            "plot_chars": 1.0,
            "title_words": title_weight,
            "decade": decade_weight,
        },
    )
    # One genre's fit at a time (n_jobs=None): liblinear trains without the GIL but keeps its
    # random generator in a C++ global, so two fits on threads race on it (seen: segfaults, and
    # fits that never converged); process workers get read-only memory-mapped matrices that
    # liblinear rejects, or copies that cost more than the fits.
    classifier = OneVsRestClassifier(
        LogisticRegression(C=C, solver="liblinear", dual=True, class_weight=class_weight, max_iter=1000),
        n_jobs=None,
    )
    return Pipeline([("features", features), ("classifier", classifier)])


register(
    ModelKind(
        name="linear",
        description="Word and character TF-IDF + title + decade, one-vs-rest logistic regression "
        "(fastest; no sentence encoder needed to train).",
        build=build_linear,
        defaults={
            "C": 1.0,
            "ngram_max": 2,
            "min_df": 2,
            "char_max_features": 60_000,
            "title_weight": 0.3,
            "decade_weight": 0.3,
            "class_weight": "balanced",
        },
    )
)


# --- hybrid: the linear model stacked with sentence embeddings -----------------------------


def build_hybrid(
    *,
    encoder: str,
    title: bool,
    chunk_words: int | None,
    embedding_C: float,
    blend_C: float,
    folds: int,
    cache_dir: str | None,
):
    """The linear kind and a logistic regression on sentence embeddings of the title and plot,
    blended per genre by a logistic regression on their out-of-fold scores (see
    :class:`moviegenre.embeddings.HybridClassifier`).

    The encoder reads "Title. plot" (``title``), and a plot longer than ``chunk_words`` words
    is encoded in chunks whose embeddings are averaged instead of being truncated at the
    encoder's 256 tokens: each added about 0.001-0.002 macro ROC AUC held out. The encoder is
    exported to ONNX at training time and travels in the model directory, so scoring needs
    onnxruntime, not torch.
    """
    from .embeddings import SentenceEmbedder

    embedder = SentenceEmbedder(
        encoder=encoder,
        columns=("title", "plot") if title else ("plot",),
        chunk_words=chunk_words,
        cache_dir=cache_dir,
    )
    return _blended_with_linear(embedder, embedding_C=embedding_C, folds=folds, blend_C=blend_C)


def _blended_with_linear(embedder, *, embedding_C: float, folds: int, blend_C: float):
    """The linear kind and a logistic regression on ``embedder``'s embeddings, blended per
    genre on out-of-fold scores: what the hybrid and static kinds share."""
    from .embeddings import HybridClassifier, default_embedding_model

    return HybridClassifier(
        text_model=build_estimator("linear"),
        embedder=embedder,
        embedding_model=default_embedding_model(C=embedding_C),
        folds=folds,
        blend_C=blend_C,
    )


register(
    ModelKind(
        name="hybrid",
        description="The linear model stacked with a classifier on sentence embeddings "
        "(most accurate; scoring needs moviegenre[onnx], training moviegenre[embed]).",
        build=build_hybrid,
        defaults={
            "encoder": DEFAULT_ENCODER,
            "title": True,
            "chunk_words": 150,
            "embedding_C": 1.0,
            "blend_C": 1.0,
            "folds": 5,
            "cache_dir": None,
        },
        trusted_types=(
            "moviegenre.embeddings.HybridClassifier",
            "moviegenre.embeddings.SentenceEmbedder",
        ),
    )
)


# --- static: the linear model blended with static sentence embeddings ------------------------


def build_static(
    *,
    encoder: str,
    title: bool,
    pca_dims: int | None,
    token_remove_pattern: str | None,
    embedding_C: float,
    blend_C: float,
    folds: int,
    cache_dir: str | None,
):
    """The linear kind and a logistic regression on static sentence embeddings (the encoder
    distilled with model2vec: one vector per token, averaged), blended per genre by a logistic
    regression on their out-of-fold scores (see :class:`moviegenre.embeddings.HybridClassifier`).

    Scores as fast as the linear kind (no encoder runs at inference) and reads its table with
    numpy and ``tokenizers`` only. Training distills the encoder once (two to four minutes on
    two CPU cores; cached), which needs moviegenre[embed].

    Tuned on an 80/20 split of the dev file (``moviegenre split``; 5,053 movies to train on,
    1,263 held out; the linear kind: macro ROC AUC 0.908 held out): MiniLM distilled to 256 PCA
    dimensions, the embedding model's C of 0.3 (held out: 0.916; C=1: 0.914, C=0.1: 0.913),
    the title before the plot (0.916; the plot alone: 0.915). The embedding model alone reaches
    0.88, but its errors differ from the TF-IDF model's, so the blend gains 0.008.
    """
    from .static import StaticEmbedder

    embedder = StaticEmbedder(
        encoder=encoder,
        columns=("title", "plot") if title else ("plot",),
        pca_dims=pca_dims,
        token_remove_pattern=token_remove_pattern,
        cache_dir=cache_dir,
    )
    return _blended_with_linear(embedder, embedding_C=embedding_C, folds=folds, blend_C=blend_C)


register(
    ModelKind(
        name="static",
        description="The linear model blended with static sentence embeddings distilled from an "
        "encoder (default; under a millisecond a plot; training needs moviegenre[embed]).",
        build=build_static,
        defaults={
            "encoder": DEFAULT_ENCODER,
            "title": True,
            "pca_dims": 256,
            "token_remove_pattern": r"\[unused\d+\]",
            "embedding_C": 0.3,
            "blend_C": 1.0,
            "folds": 5,
            "cache_dir": None,
        },
        trusted_types=(
            "moviegenre.embeddings.HybridClassifier",
            "moviegenre.static.StaticEmbedder",
        ),
    )
)
