"""Metrics for genre probabilities and label sets, with calibration's effect: before and after."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import f1_score, roc_auc_score

from moviegenre.core.data import Movies, labels_to_matrix
from moviegenre.core.errors import DataError
from moviegenre.core.genres import GENRES
from moviegenre.core.labels import is_course_taxonomy
from moviegenre.model.genre_model import GenreModel


def _has_both_classes(column: np.ndarray) -> bool:
    return 0 < column.sum() < len(column)


def roc_metrics(labels: np.ndarray, proba: np.ndarray, genres: Sequence[str] = GENRES) -> dict[str, Any]:
    """Macro and micro ROC AUC and per-label AUC (``genres``: the labels, the 24 genres by default).

    A label whose column has no positives (or no negatives) has no AUC: it is reported in
    ``genres_without_auc`` with ``None`` in ``per_genre`` and left out of the macro average.
    (The keys say "genre" for every model, so that a report reads the same for any labels.)
    """
    scorable = np.array([_has_both_classes(labels[:, i]) for i in range(labels.shape[1])])
    if not scorable.any():
        raise DataError("no label has both positive and negative movies; cannot compute ROC AUC")
    per_genre: dict[str, float | None] = {}
    for i, genre in enumerate(genres):
        per_genre[genre] = float(roc_auc_score(labels[:, i], proba[:, i])) if scorable[i] else None
    macro = float(np.mean([v for v in per_genre.values() if v is not None]))
    return {
        "n": int(labels.shape[0]),
        "macro_auc": macro,
        "micro_auc": float(roc_auc_score(labels.ravel(), proba.ravel())),
        "per_genre": per_genre,
        "genres_without_auc": [g for g, v in per_genre.items() if v is None],
    }


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-empty bin of ``bins`` equal-width bins of the predicted probability ``p``: the
    observed frequency of ``y``, the mean prediction, and the number of predictions."""
    observed, predicted = calibration_curve(y, p, n_bins=bins, strategy="uniform")
    # calibration_curve's own binning (interior edges, searchsorted), to count each bin.
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=bins)
    return observed, predicted, counts[counts > 0]


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean gap between predicted probability and observed frequency, over equal-width bins
    weighted by the predictions they hold."""
    observed, predicted, counts = reliability(y, p, bins)
    return float(np.sum(counts * np.abs(observed - predicted)) / counts.sum())


def calibration_metrics(labels: np.ndarray, proba: np.ndarray, bins: int = 10,
                        genres: Sequence[str] = GENRES) -> dict[str, Any]:
    """Brier score and expected calibration error (equal-width bins), overall and per genre."""
    brier = ((proba - labels) ** 2).mean(axis=0)
    per_genre_ece = [expected_calibration_error(labels[:, i], proba[:, i], bins) for i in range(labels.shape[1])]
    return {
        "brier": float(brier.mean()),
        "ece": float(np.mean(per_genre_ece)),
        "per_genre_brier": {g: float(v) for g, v in zip(genres, brier, strict=True)},
        "per_genre_ece": {g: v for g, v in zip(genres, per_genre_ece, strict=True)},
    }


def label_set_metrics(labels: np.ndarray, predicted: np.ndarray, genres: Sequence[str] = GENRES) -> dict[str, Any]:
    """Micro, macro and samples F1 of predicted label sets (0/1 matrices)."""
    kwargs = {"zero_division": 0}
    per_genre = f1_score(labels, predicted, average=None, **kwargs)
    return {
        "micro_f1": float(f1_score(labels, predicted, average="micro", **kwargs)),
        "macro_f1": float(f1_score(labels, predicted, average="macro", **kwargs)),
        "samples_f1": float(f1_score(labels, predicted, average="samples", **kwargs)),
        "per_genre_f1": {g: float(v) for g, v in zip(genres, per_genre, strict=True)},
    }


def all_metrics(
    labels: np.ndarray, proba: np.ndarray, label_sets: Sequence[Sequence[str]],
    uncalibrated: np.ndarray | None = None, genres: Sequence[str] = GENRES,
) -> dict[str, Any]:
    """Every metric of ``proba`` and ``label_sets`` (columns: the labels ``genres``); given the
    ``uncalibrated`` probabilities too, their ROC AUC and calibration as ``*_uncalibrated``, to
    show what calibration did."""
    result = {
        **roc_metrics(labels, proba, genres),
        "label_sets": label_set_metrics(labels, labels_to_matrix(label_sets, genres), genres),
        "calibration": calibration_metrics(labels, proba, genres=genres),
    }
    if uncalibrated is not None:
        before = roc_metrics(labels, uncalibrated, genres)
        result |= {
            "macro_auc_uncalibrated": before["macro_auc"],
            "micro_auc_uncalibrated": before["micro_auc"],
            "calibration_uncalibrated": calibration_metrics(labels, uncalibrated, genres=genres),
        }
    return result


def require_the_models_labels(model: GenreModel, movies: Movies, what: str) -> None:
    """Refuse, for ``what`` (evaluation, the report), movies without labels or with labels other
    than ``model``'s."""
    if movies.labels is None:
        where = "'genres' column" if is_course_taxonomy(model.labels) else "labels"
        raise DataError(f"{movies.source} has no {where}; {what} needs labelled data")
    if movies.label_names != model.labels:
        raise DataError(f"{movies.source}: its labels {list(movies.label_names)[:10]} are not the model's "
                        f"{list(model.labels)[:10]}")


def model_metrics(model: GenreModel, labels: np.ndarray, uncalibrated: np.ndarray) -> dict[str, Any]:
    """Every metric of ``model``, from its probabilities before calibration (scored once):
    after calibration, the model's label sets, and before, as :func:`all_metrics` gives them."""
    proba = model.calibration.apply(uncalibrated)
    return {
        **all_metrics(labels, proba, model.label_sets(proba), uncalibrated, model.labels),
        "calibration_methods": model.calibration.methods,
    }


def evaluate(model: GenreModel, movies: Movies) -> dict[str, Any]:
    """Score labelled ``movies`` with ``model`` and return every metric."""
    require_the_models_labels(model, movies, "evaluation")
    result = model_metrics(model, movies.labels, model.predict_proba(movies.frame, calibrated=False))
    result["model"] = {"id": model.id, "kind": model.kind}
    result["data"] = {"source": movies.source, "sha256": movies.sha256}
    return result
