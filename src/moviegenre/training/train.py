"""Training: cross-validate, calibrate, tune per-genre thresholds, fit on everything, describe
the run in a model card.

:func:`train` trains on movies in memory; :func:`train_and_save` is what ``moviegenre train``
and ``moviegenre serve`` (with no model yet) run: read a file (the public one by default),
sample it, train, save.
"""

from __future__ import annotations

import time
import uuid
import warnings
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold

from moviegenre.core.data import LabelSpec, Movies, load_movies, resolve_training_data
from moviegenre.core.errors import DataError, UsageError
from moviegenre.core.genres import GENRES
from moviegenre.core.labels import MAX_LABELS, MIN_LABELS, is_course_taxonomy, label_noun
from moviegenre.core.progress import Progress, details_to, quiet
from moviegenre.kinds.graph import estimators
from moviegenre.kinds.registry import DEFAULT_KIND, build_estimator, describe_params, get_kind, prepare_params
from moviegenre.model.artifact import save_model
from moviegenre.model.calibration import CHOICE_FOLDS, Calibration
from moviegenre.model.card import ModelCard
from moviegenre.model.genre_model import GenreModel, label_sets, threshold_array
from moviegenre.training.evaluate import all_metrics, label_set_metrics

_THRESHOLD_GRID = np.round(np.arange(0.02, 0.91, 0.01), 2)


def tune_thresholds(labels: np.ndarray, proba: np.ndarray, names: tuple[str, ...] = GENRES) -> dict[str, float]:
    """Per label (of ``names``), the probability cut-off that maximises that label's F1 on
    out-of-fold predictions (calibrated, as :func:`train` passes them: the scale the model
    serves). A label with no positives gets 1.0 (never chosen by its threshold)."""
    thresholds = {}
    for i, genre in enumerate(names):
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
    for part in estimators(estimator):
        if hasattr(part, "stop_words_"):
            del part.stop_words_
        if isinstance(getattr(part, "vocabulary_", None), dict):
            part.vocabulary_ = {term: int(index) for term, index in part.vocabulary_.items()}
        if isinstance(getattr(part, "coef_", None), np.ndarray) and part.coef_.dtype == np.float64:
            part.coef_ = part.coef_.astype(np.float32)
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


def check_label_counts(movies: Movies, min_positives: int, kind: str) -> None:
    """Refuse labels a model cannot learn: fewer than :data:`MIN_LABELS` or more than
    :data:`MAX_LABELS`, a label with fewer than ``min_positives`` positive (or negative) movies,
    naming each with its count, and a kind that knows only the 24 genres given others."""
    names, labels = movies.label_names, movies.labels
    if not get_kind(kind).any_labels and not is_course_taxonomy(names):
        raise UsageError(
            f"the {kind} kind knows only the course's 24 genres; train a model of your own labels with --kind "
            "static, linear or hybrid"
        )
    if not MIN_LABELS <= len(names) <= MAX_LABELS:
        raise DataError(f"{movies.source}: a model has {MIN_LABELS} to {MAX_LABELS:,} labels; the file has "
                        f"{len(names):,}: {list(names)[:10]}")
    positives = labels.sum(axis=0)
    few = [(name, int(n)) for name, n in zip(names, positives, strict=True) if n < min_positives]
    common = [(name, int(len(labels) - n)) for name, n in zip(names, positives, strict=True)
              if len(labels) - n < min_positives]
    if few or common:
        listed = ", ".join(f"{name!r} {n}" for name, n in few[:20])
        also = ", ".join(f"{name!r} {n}" for name, n in common[:20])
        raise DataError(
            f"{movies.source}: too few movies to learn from, for {min_positives}-fold cross-validation: "
            + "; ".join(part for part in (
                f"label(s) with fewer than {min_positives} positive movies: {listed}" if few else "",
                f"label(s) that fewer than {min_positives} movies lack: {also}" if common else "") if part)
            + ". Add movies, drop or merge these labels, or pass --min-positives N to train anyway (such a "
            "label's probabilities are then little more than its frequency)"
        )


def train(
    kind: str,
    movies: Movies,
    *,
    params: dict[str, Any] | None = None,
    cv_folds: int = 3,
    seed: int = 0,
    data_home: Path | None = None,
    progress: Progress = quiet,
    min_positives: int | None = None,
    title: str | None = None,
) -> GenreModel:
    """Train a model of ``kind`` on labelled ``movies``.

    ``params`` are the kind's options over its defaults
    (:func:`~moviegenre.kinds.registry.prepare_params`: an encoder is found before anything is
    fitted; ``data_home``, when given, holds the kind's caches). The card records them as
    :func:`~moviegenre.kinds.registry.describe_params` gives them, with no path of this machine.

    With ``cv_folds >= 2``, the out-of-fold probabilities give the per-genre calibration
    (:class:`~moviegenre.model.calibration.Calibration`), then, calibrated, the per-genre thresholds
    and the cross-validated metrics stored in model.json; with fewer, probabilities are not
    calibrated, thresholds stay at 0.5 and no cross-validated metrics are recorded. Returns an
    in-memory model; save it with :func:`moviegenre.model.artifact.save_model`.

    The model's labels are ``movies``' (:attr:`~moviegenre.core.data.Movies.label_names`). A
    label with fewer than ``min_positives`` positive or negative movies is refused
    (:func:`check_label_counts`); by default ``cv_folds`` (at least 1) for a catalogue's own
    labels, and none for the course's 24 genres, a fixed taxonomy whose rare genres (News) get a
    threshold of 1.0 instead. ``title`` names the model where people see it (the web page).
    """
    return _fit(kind, movies, prepare_params(kind, params or {}, data_home=data_home), cv_folds, seed, progress,
                min_positives, title)


def _fit(kind: str, movies: Movies, params: dict[str, Any], cv_folds: int, seed: int,
         progress: Progress, min_positives: int | None = None, title: str | None = None) -> GenreModel:
    """:func:`train` with the full, prepared ``params``."""
    if movies.labels is None:
        raise DataError(f"{movies.source} has no labels; training needs labelled movies")
    if min_positives is None:
        min_positives = 0 if is_course_taxonomy(movies.label_names) else max(cv_folds, 1)
    check_label_counts(movies, min_positives, kind)
    with warnings.catch_warnings():
        # Rare genres (News has a handful of positives) make scikit-learn warn on every fold
        # and every constant one-vs-rest column; the metrics report such genres explicitly.
        warnings.filterwarnings("ignore", message="The least populated class")
        warnings.filterwarnings("ignore", message="Label not .* is present in all training")
        return _train(kind, movies, params, cv_folds, seed, progress, title)


def _train(kind: str, movies: Movies, params: dict[str, Any], cv_folds: int, seed: int,
           progress: Progress, title: str | None) -> GenreModel:
    spec = get_kind(kind)
    estimator = build_estimator(kind, **params)
    names = movies.label_names
    started = time.perf_counter()
    metrics: dict[str, Any] = {}
    thresholds = {label: 0.5 for label in names}
    calibration = None
    fitted = None
    if cv_folds >= 2:
        if hasattr(estimator, "fit_cross_validated"):  # a stack that cross-validates itself cheaply
            fitted = clone(estimator)
            oof = fitted.fit_cross_validated(movies.frame, movies.labels, folds=cv_folds, seed=seed,
                                             progress=progress)
            scheme = (f"{cv_folds}-fold cross-validation of the blend, on {fitted.folds}-fold out-of-fold "
                      "scores of the models it blends")
        else:
            oof = out_of_fold_proba(estimator, movies, cv_folds, seed, progress)
            scheme = f"{cv_folds}-fold cross-validation"
        progress("calibrating")
        calibration = Calibration.fit(movies.labels, oof, seed=seed, fitted_on=f"out-of-fold probabilities of {scheme}",
                                      names=names)
        thresholds = tune_thresholds(movies.labels, calibration.apply(oof), names)
        metrics = {"cv_folds": cv_folds, "cv_scheme": scheme,
                   **_cv_metrics(movies.labels, oof, calibration, thresholds, names)}
    if fitted is None:
        progress(f"fitting on all {len(movies)} movies")
        fitted = clone(estimator).fit(movies.frame, movies.labels)
    fitted = compact_for_storage(fitted)
    seconds = time.perf_counter() - started
    created = datetime.now(UTC)
    card = {
        "id": f"{kind}-{created.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}",
        "kind": kind,
        "description": spec.description,
        "created_at": created.isoformat(timespec="seconds"),
        **({"title": title} if title is not None else {}),
        "labels": [{"name": name, "positives": int(n)}
                   for name, n in zip(names, movies.labels.sum(axis=0), strict=True)],
        **({"labels_from": movies.label_spec.to_json()} if not movies.label_spec.course else {}),
        "thresholds": thresholds,
        "threshold_objective": f"per-{label_noun(names)} F1 on out-of-fold predictions, calibrated"
                               if cv_folds >= 2 else None,
        **({"calibration": calibration.to_json()} if calibration is not None else {}),
        "params": describe_params(kind, params),
        "training_data": {
            "source": Path(movies.source).name,  # the file's name: no path of this machine
            "sha256": movies.sha256,
            "rows": len(movies),
        },
        "training_seconds": round(seconds, 2),
        "metrics": {"cv": metrics} if metrics else {},
    }
    return GenreModel(fitted, ModelCard.from_json(card, f"the card of the new {kind} model"))


def train_and_save(
    directory: str | Path,
    *,
    kind: str = DEFAULT_KIND,
    data: str | Path | None = None,
    data_home: Path,
    options: dict[str, Any] | None = None,
    sample: int | None = None,
    seed: int = 0,
    cv_folds: int = 3,
    progress: Progress = quiet,
    detail: Progress | None = None,
    labels: LabelSpec | None = None,
    min_positives: int | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Train a ``kind`` model on the labelled file ``data`` (default: the public training file,
    downloaded once into ``data_home``) and save it as the model directory ``directory``;
    return its model.json.

    ``labels`` says where the file keeps its labels (by default the course's 24 genres in its
    ``genres`` column); ``min_positives`` and ``title``: see :func:`train`.

    ``options`` are the kind's options (:attr:`~moviegenre.kinds.registry.ModelKind.options`,
    such as ``encoder``), checked, and an encoder found, before the data is read. ``sample``
    trains on that many movies drawn with ``seed``. ``progress`` hears the stage
    (``"cross-validation fold 1/3"``), ``detail`` what happens within it (a sentence
    encoder's ``"encoding 640/5,053 texts"``, :func:`moviegenre.core.progress.detail`).
    """
    params = prepare_params(kind, options or {}, data_home=data_home)
    progress("reading data" if data is not None else "fetching the public training file (downloaded once)")
    movies = load_movies(resolve_training_data(data, data_home), labelled=True, labels=labels).sample(sample, seed)
    with nullcontext() if detail is None else details_to(detail):
        model = _fit(kind, movies, params, cv_folds, seed, progress, min_positives, title)
    progress("writing model")
    return save_model(model.pipeline, model.card, directory)


def train_default(directory: str | Path, *, data: str | Path | None = None, data_home: Path,
                  progress: Progress = quiet, detail: Progress | None = None) -> dict[str, Any]:
    """Train the default kind (:data:`~moviegenre.kinds.registry.DEFAULT_KIND`) with its default
    options into ``directory``: what ``moviegenre serve`` does when there is no model yet."""
    return train_and_save(directory, kind=DEFAULT_KIND, data=data, data_home=data_home, progress=progress,
                          detail=detail)


def _cv_metrics(labels: np.ndarray, oof: np.ndarray, calibration: Calibration,
                thresholds: dict[str, float], names: tuple[str, ...]) -> dict[str, Any]:
    """The cross-validated metrics, of the out-of-fold probabilities calibrated by maps that
    did not see them (:attr:`Calibration.cross_fitted`): calibrating and evaluating on the
    same rows would flatter the calibration figures. Uncalibrated figures are kept beside."""
    honest = calibration.cross_fitted
    return {
        **all_metrics(labels, honest, label_sets(honest, threshold_array(thresholds, names), names), uncalibrated=oof,
                      genres=names),
        "calibrated_by": f"per-genre maps fitted on {CHOICE_FOLDS} folds of the out-of-fold rows, "
        "each row calibrated by the map fitted without it (a genre with fewer positives than "
        "folds: by its map fitted on every row)",
    }


__all__ = ["check_label_counts", "label_set_metrics", "train", "train_and_save", "train_default", "tune_thresholds"]
