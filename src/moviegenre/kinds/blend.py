"""The blend the hybrid and static kinds share: the linear model and a classifier on embeddings,
stacked per genre on out-of-fold scores."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted


def _scores(estimator, X) -> np.ndarray:
    """Per-genre logits: ``decision_function`` where the estimator has one, else the logit of
    its probabilities."""
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(X), dtype=float).reshape(len(X), -1)
    proba = np.clip(np.asarray(estimator.predict_proba(X), dtype=float), 1e-9, 1 - 1e-9)
    return np.log(proba / (1 - proba))


def default_embedding_model(C: float = 1.0) -> BaseEstimator:
    from sklearn.multiclass import OneVsRestClassifier

    return OneVsRestClassifier(LogisticRegression(C=C, max_iter=2000))


class HybridClassifier(ClassifierMixin, BaseEstimator):
    """Stack a text model and a classifier on sentence embeddings, one blend per genre.

    Parameters
    ----------
    text_model : estimator
        Takes the movie frame; its per-genre ``decision_function`` (or the logit of its
        ``predict_proba``) is the first input of each genre's blend.
    embedder : estimator
        Turns the frame into dense embeddings: ``fit``, ``transform`` and ``n_features_out_``
        (a :class:`SentenceEmbedder`, or the static kind's embedder). One that reads files
        beside the model says so with ``model_files()``/``use_model_directory()``.
    embedding_model : estimator or None, default=None
        Multi-label classifier on the embeddings; ``None`` means one-vs-rest logistic
        regression with ``C=1``.
    folds : int, default=5
        Folds of the out-of-fold scores that the blends are fitted on.
    blend_C : float, default=1.0
        Inverse regularisation of each genre's blending logistic regression.
    random_state : int, default=0
        Seed of the folds.

    Each genre's final logit is ``blend_coef_[g] @ [text score, embedding score] +
    blend_intercept_[g]``: a logistic regression fitted on out-of-fold scores, which both
    weighs the two models per genre and calibrates their combination (Platt scaling).
    """

    def __init__(
        self,
        *,
        text_model,
        embedder,
        embedding_model=None,
        folds: int = 5,
        blend_C: float = 1.0,
        random_state: int = 0,
    ):
        self.text_model = text_model
        self.embedder = embedder
        self.embedding_model = embedding_model
        self.folds = folds
        self.blend_C = blend_C
        self.random_state = random_state

    def fit(self, X, y):
        self._fit(X, y, progress=None)
        return self

    def fit_cross_validated(self, X, y, *, folds: int, seed: int, progress: Callable[[str], None] | None = None
                            ) -> np.ndarray:
        """Fit as :meth:`fit` does (the same fitted model), and return the blend's out-of-fold
        probabilities for ``folds``-fold cross-validation (seeded by ``seed``), at almost no
        extra cost.

        The blend is already fitted on out-of-fold scores of the two models: row ``i``'s scores
        come from models that never saw it. Cross-validating the whole stack the plain way would
        refit both models ``folds * (self.folds + 1)`` more times; here each outer fold refits
        only the per-genre blend, on the other rows' out-of-fold scores, and applies it to its
        own. The estimate is of the same fitted stack, its base models trained on
        ``(self.folds - 1) / self.folds`` of the rows rather than fewer.
        """
        y = np.asarray(y)
        oof = self._fit(X, y, progress=progress)
        proba = np.zeros(y.shape, dtype=float)
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
        for train_idx, test_idx in splitter.split(oof):
            coef, intercept = _blends(oof[train_idx], y[train_idx], self.blend_C)
            proba[test_idx] = expit(np.einsum("ngk,gk->ng", oof[test_idx], coef) + intercept)
        return proba

    def _fit(self, X, y, progress: Callable[[str], None] | None) -> np.ndarray:
        """Fit every part; return the out-of-fold scores the blends were fitted on."""
        y = np.asarray(y)
        if y.ndim != 2:
            raise ValueError("HybridClassifier needs a 2-D 0/1 label matrix")
        if progress is not None:
            progress("embedding the movies")  # the static kind distils its encoder here, once per machine
        self.embedder_ = clone(self.embedder).fit(X)
        embeddings = self.embedder_.transform(X)
        embedding_model = self.embedding_model
        if embedding_model is None:
            embedding_model = default_embedding_model()
        oof = self._out_of_fold_scores(X, embeddings, y, embedding_model, progress)
        self.blend_coef_, self.blend_intercept_ = _blends(oof, y, self.blend_C)
        if progress is not None:
            progress(f"fitting on all {len(y)} movies")
        self.text_model_ = clone(self.text_model).fit(X, y)
        self.embedding_model_ = clone(embedding_model).fit(embeddings, y)
        self.n_outputs_ = y.shape[1]
        return oof

    def _out_of_fold_scores(self, X, embeddings, y, embedding_model,
                            progress: Callable[[str], None] | None) -> np.ndarray:
        scores = np.zeros((len(y), y.shape[1], 2))
        splitter = KFold(n_splits=self.folds, shuffle=True, random_state=self.random_state)
        for fold, (train_idx, test_idx) in enumerate(splitter.split(embeddings), start=1):
            if progress is not None:
                progress(f"cross-validation fold {fold}/{self.folds}")
            rows_train, rows_test = _rows(X, train_idx), _rows(X, test_idx)
            text = clone(self.text_model).fit(rows_train, y[train_idx])
            dense = clone(embedding_model).fit(embeddings[train_idx], y[train_idx])
            scores[test_idx, :, 0] = _scores(text, rows_test)
            scores[test_idx, :, 1] = _scores(dense, embeddings[test_idx])
        return scores

    def base_scores(self, X) -> np.ndarray:
        """(n, n_labels, 2): each genre's text-model and embedding-model logits."""
        check_is_fitted(self, "blend_coef_")
        text = _scores(self.text_model_, X)
        dense = _scores(self.embedding_model_, self.embedder_.transform(X))
        return np.stack([text, dense], axis=2)

    def decision_function(self, X) -> np.ndarray:
        base = self.base_scores(X)
        return np.einsum("ngk,gk->ng", base, self.blend_coef_) + self.blend_intercept_

    def predict_proba(self, X) -> np.ndarray:
        return expit(self.decision_function(X))

    def predict(self, X) -> np.ndarray:
        return (self.decision_function(X) >= 0).astype(int)


def _blends(oof: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray]:
    """Per genre, a logistic regression on the two out-of-fold scores ``oof[:, g, :]``:
    (n_labels, 2) coefficients and (n_labels,) intercepts."""
    n_labels = y.shape[1]
    coef, intercept = np.zeros((n_labels, 2)), np.zeros(n_labels)
    for g in range(n_labels):
        if 0 < y[:, g].sum() < len(y):
            blend = LogisticRegression(C=C).fit(oof[:, g, :], y[:, g])
            coef[g], intercept[g] = blend.coef_[0], blend.intercept_[0]
        else:  # a label never (or always) seen: a constant, as one-vs-rest does
            intercept[g] = 30.0 if y[:, g].all() else -30.0
    return coef, intercept


def _rows(X, index):
    return X.iloc[index] if hasattr(X, "iloc") else X[index]


def blended_with_linear(embedder, *, embedding_C: float, folds: int, blend_C: float):
    """The linear kind and a logistic regression on ``embedder``'s embeddings, blended per
    genre on out-of-fold scores: what the hybrid and static kinds share."""
    from moviegenre.kinds.registry import build_estimator

    return HybridClassifier(
        text_model=build_estimator("linear"),
        embedder=embedder,
        embedding_model=default_embedding_model(C=embedding_C),
        folds=folds,
        blend_C=blend_C,
    )
