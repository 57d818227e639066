"""Compiling fitted scikit-learn estimators into their fast forms (:mod:`moviegenre.fast`).

The linear kind compiles with :func:`compile_linear`, the static kind with
:func:`compile_static`; each kind registers its compiler (``ModelKind.compile``), and nothing
here guesses a kind from an estimator's shape. :func:`verify` checks a compiled form against the
estimator on probe items before a model is saved.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from moviegenre.fast.linear import Block, DecadeOneHot, FastLinear, TfidfText
from moviegenre.fast.static import FastStatic

#: Largest difference from the pipeline's probabilities that :func:`verify` accepts.
TOLERANCE = 1e-9


class NotCompilable(ValueError):
    """The fitted estimator has a step or a setting that its fast form does not reproduce."""


def compile_linear(pipeline: Any) -> FastLinear:
    """Compile a fitted ``linear``-kind pipeline (a features/classifier Pipeline) into a
    :class:`FastLinear`.

    Raises :class:`NotCompilable` naming the first step or setting it cannot reproduce (a
    custom tokenizer, another vectorizer, ...).
    """
    steps = getattr(pipeline, "steps", None)
    if not steps or len(steps) != 2:
        raise NotCompilable(f"{type(pipeline).__name__} is not a two-step features/classifier Pipeline")
    features, classifier = steps[0][1], steps[1][1]
    blocks = _compile_features(features)
    coef, intercept, constant = _compile_classifier(classifier)
    width = sum(block.vectorizer.width for block in blocks)
    if coef.shape[0] != width:
        raise NotCompilable(f"the classifier has {coef.shape[0]} coefficients for {width} features")
    fast = FastLinear(blocks, coef, intercept, constant)
    _precompute_words(fast)
    return fast


def compile_static(hybrid: Any) -> FastStatic:
    """Compile a fitted ``static``-kind model (a ``HybridClassifier`` of the linear kind and a
    static embedder) into a :class:`FastStatic`.

    Raises :class:`NotCompilable` naming what it cannot reproduce.
    """
    for name in ("embedder_", "text_model_", "embedding_model_", "blend_coef_", "blend_intercept_"):
        if not hasattr(hybrid, name):
            raise NotCompilable(f"the {type(hybrid).__name__} has no {name}")
    embedder = hybrid.embedder_
    if not callable(getattr(embedder, "table", None)):
        raise NotCompilable(f"the embedder is a {type(embedder).__name__}, which has no static table")
    text = compile_linear(hybrid.text_model_)
    coef, intercept, constant = _compile_classifier(hybrid.embedding_model_)
    try:
        fast = FastStatic(text, embedder.table(), embedder.columns, coef, intercept, constant,
                          np.asarray(hybrid.blend_coef_), np.asarray(hybrid.blend_intercept_))
    except ValueError as exc:
        raise NotCompilable(str(exc)) from None
    _precompute_tokens(fast)
    return fast


def verified(compiler: Callable[[Any], FastLinear | FastStatic]) -> Callable[[Any], FastLinear | FastStatic]:
    """``compiler`` followed by :func:`verify` against the fitted estimator: what a kind
    registers as its ``compile``."""

    def compile_and_verify(fitted: Any) -> FastLinear | FastStatic:
        fast = compiler(fitted)
        verify(fast, fitted)
        return fast

    return compile_and_verify


def _compile_features(features: Any) -> list[Block]:
    from sklearn.compose import ColumnTransformer

    if type(features) is not ColumnTransformer:
        raise NotCompilable(f"the features step is a {type(features).__name__}, not a ColumnTransformer")
    if not hasattr(features, "transformers_"):
        raise NotCompilable("the ColumnTransformer is not fitted")
    weights = features.transformer_weights or {}
    blocks = []
    for name, transformer, columns in features.transformers_:
        if name == "remainder":
            if transformer != "drop":
                raise NotCompilable("the ColumnTransformer passes columns through")
            continue
        weight = float(weights.get(name, 1.0))
        if columns in ("plot", "title"):
            blocks.append(Block(name, columns, _compile_tfidf(name, transformer), weight))
        elif list(columns) == ["year"]:
            blocks.append(Block(name, "year", _compile_decade(name, transformer), weight))
        else:
            raise NotCompilable(f"transformer {name!r} reads columns {columns!r}")
    return blocks


def _precompute_words(fast: FastLinear) -> None:
    """Give each column's word table (:class:`~moviegenre.fast.linear.WordTable`) the rows of
    the words it is likely to meet, so that a freshly loaded model need not compute them: the
    words of the column's word vocabularies (the training texts' words that are not rare) and
    their stop words, and the characters of its ``char_wb`` vocabularies and ASCII punctuation
    (one-character words)."""
    for column, table in fast.word_tables.items():
        words: set[str] = set()
        for vectorizer in table.vectorizers:
            if vectorizer.analyzer == "char_wb":
                words.update(char for term in vectorizer.terms for char in term)
                words.update(string.punctuation)
            else:
                words.update(word for term in vectorizer.terms for word in term.split(" "))
                words.update(vectorizer.stop_words or ())
        if table.lowercase:
            words = {word.lower() for word in words}
        fast.precompute_words(column, sorted(word for word in words if word.split() == [word]))


def _precompute_tokens(fast: FastStatic) -> None:
    """Give the static table the token ids of the words it is likely to meet (when it reads
    texts word by word): the words its linear part precomputed, and the tokenizer's own words."""
    words = {word for table in fast.text.word_tables.values() for word in table.known()[0]}
    fast.table.precompute(sorted(words.union(fast.table.vocabulary_words())))


def _compile_tfidf(name: str, vectorizer: Any) -> TfidfText:
    from sklearn.feature_extraction.text import TfidfVectorizer

    if type(vectorizer) is not TfidfVectorizer:
        raise NotCompilable(f"transformer {name!r} is a {type(vectorizer).__name__}, not a TfidfVectorizer")
    p = vectorizer.get_params()
    unsupported = {
        "analyzer": p["analyzer"] not in ("word", "char_wb"),
        "input": p["input"] != "content",
        "preprocessor": p["preprocessor"] is not None,
        "tokenizer": p["tokenizer"] is not None,
        "strip_accents": p["strip_accents"] is not None,
        "binary": p["binary"],
        "norm": p["norm"] not in ("l2", None),
        "dtype": np.dtype(p["dtype"]) != np.float64,
    }
    bad = [key for key, is_bad in unsupported.items() if is_bad]
    if bad:
        raise NotCompilable(f"transformer {name!r} uses unsupported setting(s) {bad}")
    vocabulary = vectorizer.vocabulary_
    terms = [""] * len(vocabulary)
    for term, index in vocabulary.items():
        terms[int(index)] = term
    if len(set(terms)) != len(terms) or sorted(int(i) for i in vocabulary.values()) != list(range(len(terms))):
        raise NotCompilable(f"transformer {name!r} has a vocabulary whose indices are not 0..n-1")
    stop_words = vectorizer.get_stop_words() if p["analyzer"] == "word" else None
    idf = np.asarray(vectorizer.idf_, dtype=np.float64) if p["use_idf"] else None
    return TfidfText(
        analyzer=p["analyzer"],
        terms=terms,
        idf=idf,
        ngram_range=tuple(p["ngram_range"]),
        lowercase=bool(p["lowercase"]),
        token_pattern=p["token_pattern"],
        stop_words=sorted(stop_words) if stop_words else None,
        sublinear_tf=bool(p["sublinear_tf"]),
        norm=p["norm"],
    )


def _compile_decade(name: str, transformer: Any) -> DecadeOneHot:
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    from moviegenre.kinds.text import decade_of

    steps = getattr(transformer, "steps", None)
    if not steps or len(steps) != 2:
        raise NotCompilable(f"transformer {name!r} is not decade_of + OneHotEncoder")
    function, encoder = steps[0][1], steps[1][1]
    if type(function) is not FunctionTransformer or function.func is not decade_of:
        raise NotCompilable(f"transformer {name!r} does not start with decade_of")
    if (
        type(encoder) is not OneHotEncoder
        or encoder.handle_unknown != "ignore"
        or encoder.drop is not None
        or getattr(encoder, "infrequent_categories_", None) not in (None, [None])
        or len(encoder.categories_) != 1
    ):
        raise NotCompilable(f"transformer {name!r} is not a plain one-hot encoder with unknowns ignored")
    return DecadeOneHot([str(c) for c in encoder.categories_[0]])


def _compile_classifier(classifier: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier, _ConstantPredictor

    if type(classifier) is not OneVsRestClassifier or not getattr(classifier, "multilabel_", False):
        raise NotCompilable(f"the classifier is a {type(classifier).__name__}, not a multilabel OneVsRestClassifier")
    columns, intercepts, constants = [], [], []
    width = None
    for estimator in classifier.estimators_:
        if type(estimator) is _ConstantPredictor:
            columns.append(None)
            intercepts.append(0.0)
            constants.append(float(np.asarray(estimator.y_, dtype=np.float64).reshape(-1)[0]))
        elif type(estimator) is LogisticRegression and list(estimator.classes_) == [0, 1]:
            coef = np.asarray(estimator.coef_)
            if coef.shape[0] != 1:
                raise NotCompilable("a genre's logistic regression is not binary")
            columns.append(coef[0])
            width = coef.shape[1]
            intercepts.append(float(np.asarray(estimator.intercept_).reshape(-1)[0]))
            constants.append(math.nan)
        else:
            raise NotCompilable(f"a genre's estimator is a {type(estimator).__name__}")
    if width is None:
        raise NotCompilable("every genre has a constant predictor")
    dtype = next(c.dtype for c in columns if c is not None)
    matrix = np.zeros((width, len(columns)), dtype=dtype)
    for j, column in enumerate(columns):
        if column is not None:
            matrix[:, j] = column
    return matrix, np.array(intercepts), np.array(constants)


# --- checking it against the pipeline ----------------------------------------------------------

#: Items that exercise every block: words, stop words, rare characters, whitespace runs,
#: titles, known/unknown/missing decades, and a plot with no known feature at all.
PROBE_ITEMS: tuple[tuple[str, str, float], ...] = (
    ("who meets by fate ,  shall be sealed by fate .  theresa osborne is running along the beach",
     "Message in a Bottle", 1999.0),
    ("the true story of billy hayes ,  an american college student caught smuggling drugs", "", math.nan),
    ("A gunfight in a frontier town.\n\tThe SHERIFF   rides out; cattle-rustlers flee!", "Dodge", 1880.0),
    ("Zoë and the naïve café owner — über-cool, 1920s jazz; x y z", "Café Society", 2016.0),
    ("qqqq", "zzzz", 3050.0),
)  # fmt: skip


def verify(fast: FastLinear | FastStatic, pipeline: Any,
           items: Sequence[tuple[str, str, float]] = PROBE_ITEMS) -> float:
    """Largest absolute difference between ``fast`` and ``pipeline`` probabilities on ``items``;
    raises :class:`NotCompilable` when it exceeds :data:`TOLERANCE`."""
    import pandas as pd

    frame = pd.DataFrame(list(items), columns=["plot", "title", "year"]).astype({"year": float})
    expected = np.asarray(pipeline.predict_proba(frame), dtype=float)
    one_by_one = np.vstack([fast.predict_proba_one(*item) for item in items])
    batch = fast.predict_proba(*zip(*items, strict=True))
    worst = float(max(np.abs(one_by_one - expected).max(), np.abs(batch - expected).max()))
    if not worst <= TOLERANCE:
        raise NotCompilable(f"the compiled model differs from the pipeline by {worst:.3g}")
    return worst


