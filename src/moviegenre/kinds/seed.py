"""The ``seed`` kind: the original system's pipeline, reproduced with default parameters."""

from __future__ import annotations

from moviegenre.kinds.registry import ModelKind, register


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

    from moviegenre.kinds.text import seed_tokenize, to_dense, word_counts

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
            "moviegenre.kinds.text.seed_tokenize",
            "moviegenre.kinds.text.word_counts",
            "moviegenre.kinds.text.to_dense",
        ),
        any_labels=False,  # the original pipeline's 24 genres, as it had them
    )
)


