"""Training: cross-validate, calibrate, tune per-genre thresholds, fit on everything, describe
the run."""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold

from .calibration import CHOICE_FOLDS, Calibration
from .data import Movies
from .errors import DataError
from .evaluate import all_metrics, label_set_metrics
from .genres import GENRES
from .models import build_estimator, get_kind
from .predict import GenreModel

Progress = Callable[[str], None]

_THRESHOLD_GRID = np.round(np.arange(0.02, 0.91, 0.01), 2)


def tune_thresholds(labels: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Per genre, the probability cut-off that maximises that genre's F1 on out-of-fold
    predictions (calibrated, as :func:`train` passes them: the scale the model serves). A genre
    with no positives gets 1.0 (never chosen by its threshold)."""
    thresholds = {}
    for i, genre in enumerate(GENRES):
        y, p = labels[:, i], proba[:, i]
        if y.sum() == 0:
            thresholds[genre] = 1.0
            continue
        predicted = p[None, :] >= _THRESHOLD_GRID[:, None]
        true_pos = (predicted & (y[None, :] == 1)).sum(axis=1)
        f1 = 2 * true_pos / (predicted.sum(axis=1) + y.sum())
        thresholds[genre] = float(_THRESHOLD_GRID[int(np.argmax(f1))])
    return thresholds


def compact_for_storage(estimator: Any) -> Any:
    """Shrink a fitted pipeline before it is saved.

    * Vectorizers' ``stop_words_`` (every term cut by min_df/max_df) is only kept for
      introspection and can be most of a model's size; scikit-learn documents it as safe to drop.
    * ``vocabulary_`` maps terms to numpy integers, which skops stores as one file per term
      (tens of thousands of files, slow to load); plain ints are stored inline.
    * Linear coefficients are kept as float32: half the size, and probabilities move by less
      than 1e-6 (scores are still computed in float64).
    """
    seen = set()

    def visit(obj: Any) -> None:
        if id(obj) in seen or not hasattr(obj, "get_params"):
            return
        seen.add(id(obj))
        if hasattr(obj, "stop_words_"):
            del obj.stop_words_
        if isinstance(getattr(obj, "vocabulary_", None), dict):
            obj.vocabulary_ = {term: int(index) for term, index in obj.vocabulary_.items()}
        if isinstance(getattr(obj, "coef_", None), np.ndarray) and obj.coef_.dtype == np.float64:
            obj.coef_ = obj.coef_.astype(np.float32)
        for value in vars(obj).values():
            children = value if isinstance(value, list | tuple) else [value]
            for child in children:
                visit(child[1] if isinstance(child, tuple) and len(child) >= 2 else child)

    visit(estimator)
    return estimator


def out_of_fold_proba(
    estimator: Any, movies: Movies, folds: int, seed: int, progress: Progress
) -> np.ndarray:
    proba = np.zeros(movies.labels.shape, dtype=float)
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (train_idx, test_idx) in enumerate(splitter.split(movies.frame), start=1):
        progress(f"cross-validation fold {fold}/{folds}")
        model = clone(estimator).fit(movies.frame.iloc[train_idx], movies.labels[train_idx])
        proba[test_idx] = model.predict_proba(movies.frame.iloc[test_idx])
    return proba


def train(
    kind: str,
    movies: Movies,
    *,
    params: dict[str, Any] | None = None,
    cv_folds: int = 3,
    seed: int = 0,
    progress: Progress = lambda message: None,
) -> GenreModel:
    """Train a model of ``kind`` on labelled ``movies``.

    With ``cv_folds >= 2``, the out-of-fold probabilities give the per-genre calibration
    (:class:`~moviegenre.calibration.Calibration`), then, calibrated, the per-genre thresholds
    and the cross-validated metrics stored in model.json; with fewer, probabilities are not
    calibrated, thresholds stay at 0.5 and no cross-validated metrics are recorded. Returns an
    in-memory model; save it with :func:`moviegenre.artifact.save_model`.
    """
    if movies.labels is None:
        raise DataError(f"{movies.source} has no 'genres' column; training needs labelled movies")
    with warnings.catch_warnings():
        # Rare genres (News has a handful of positives) make scikit-learn warn on every fold
        # and every constant one-vs-rest column; the metrics report such genres explicitly.
        warnings.filterwarnings("ignore", message="The least populated class")
        warnings.filterwarnings("ignore", message="Label not .* is present in all training")
        return _train(kind, movies, params, cv_folds, seed, progress)


def _train(kind, movies, params, cv_folds, seed, progress) -> GenreModel:
    spec = get_kind(kind)
    params = {**spec.defaults, **(params or {})}
    estimator = build_estimator(kind, **params)
    started = time.perf_counter()
    metrics: dict[str, Any] = {}
    thresholds = {genre: 0.5 for genre in GENRES}
    calibration = None
    if cv_folds >= 2:
        oof = out_of_fold_proba(estimator, movies, cv_folds, seed, progress)
        progress("calibrating")
        calibration = Calibration.fit(movies.labels, oof, seed=seed,
                                      fitted_on=f"out-of-fold probabilities of {cv_folds}-fold cross-validation")
        thresholds = tune_thresholds(movies.labels, calibration.apply(oof))
        metrics = {"cv_folds": cv_folds, **_cv_metrics(movies.labels, oof, calibration, thresholds)}
    progress(f"fitting on all {len(movies)} movies")
    fitted = compact_for_storage(clone(estimator).fit(movies.frame, movies.labels))
    seconds = time.perf_counter() - started
    created = datetime.now(UTC)
    metadata = {
        "id": f"{kind}-{created.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}",
        "kind": kind,
        "description": spec.description,
        "created_at": created.isoformat(timespec="seconds"),
        "genres": list(GENRES),
        "thresholds": thresholds,
        "threshold_objective": "per-genre F1 on out-of-fold predictions, calibrated" if cv_folds >= 2 else None,
        **({"calibration": calibration.to_json()} if calibration is not None else {}),
        "params": params,
        "training_data": {
            "source": Path(movies.source).name,  # the file's name: no path of this machine
            "sha256": movies.sha256,
            "rows": len(movies),
        },
        "training_seconds": round(seconds, 2),
        "metrics": {"cv": metrics} if metrics else {},
    }
    return GenreModel(fitted, metadata)


def _cv_metrics(labels: np.ndarray, oof: np.ndarray, calibration: Calibration,
                thresholds: dict[str, float]) -> dict[str, Any]:
    """The cross-validated metrics, of the out-of-fold probabilities calibrated by maps that
    did not see them (:attr:`Calibration.cross_fitted`): calibrating and evaluating on the
    same rows would flatter the calibration figures. Uncalibrated figures are kept beside."""
    honest = calibration.cross_fitted
    tuned = GenreModel(None, {"thresholds": thresholds})
    return {
        **all_metrics(labels, honest, tuned.label_sets(honest), uncalibrated=oof),
        "calibrated_by": f"per-genre maps fitted on {CHOICE_FOLDS} folds of the out-of-fold rows, "
        "each row calibrated by the map fitted without it (a genre with fewer positives than "
        "folds: by its map fitted on every row)",
    }


__all__ = ["train", "tune_thresholds", "label_set_metrics"]
