"""The ``hybrid`` kind: the linear model blended with a classifier on sentence embeddings from an
encoder exported to ONNX."""

from __future__ import annotations

from moviegenre.kinds.encoders import DEFAULT_ENCODER, encoder_preparer
from moviegenre.kinds.registry import ModelKind, register


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
    :class:`moviegenre.kinds.blend.HybridClassifier`).

    The encoder reads "Title. plot" (``title``), and a plot longer than ``chunk_words`` words
    is encoded in chunks whose embeddings are averaged instead of being truncated at the
    encoder's 256 tokens: each added about 0.001-0.002 macro ROC AUC held out. The encoder is
    exported to ONNX at training time and travels in the model directory, so scoring needs
    onnxruntime, not torch.
    """
    from moviegenre.kinds.blend import blended_with_linear
    from moviegenre.kinds.embeddings import SentenceEmbedder

    embedder = SentenceEmbedder(
        encoder=encoder,
        columns=("title", "plot") if title else ("plot",),
        chunk_words=chunk_words,
        cache_dir=cache_dir,
    )
    return blended_with_linear(embedder, embedding_C=embedding_C, folds=folds, blend_C=blend_C)


def explain_hybrid(model):
    """An explainer of the linear part's terms and the embedding model's share (it reads the
    scikit-learn pipeline: a hybrid has no compiled form)."""
    from moviegenre.kinds.explainers import hybrid_explainer

    return hybrid_explainer(model)


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
            "moviegenre.kinds.blend.HybridClassifier",
            "moviegenre.kinds.embeddings.SentenceEmbedder",
        ),
        explainer=explain_hybrid,
        options=("encoder",),
        prepare=encoder_preparer("embeddings"),
        local_params=("cache_dir",),
    )
)


