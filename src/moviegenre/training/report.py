"""A Markdown report of a model on labelled movies: the metrics table and PNG figures.

``write_report`` scores the movies once, then writes into one folder:

* ``report.md``: headline metrics, a per-genre table, and the figures below;
* ``auc_per_genre.png``: ROC AUC per genre, bars sorted, with the macro average marked;
* ``roc_curves.png``: ROC curves of the most frequent genres;
* ``reliability.png``: predicted probability against observed frequency (all genres pooled,
  before and after the model's calibration, and the most frequent genres), with the number of
  predictions per bin;
* ``f1_per_genre.png``: label-set F1 per genre at the model's tuned thresholds;
* ``metrics.json``: every number in the report.

matplotlib (the ``report`` extra) is imported only here, with the non-interactive Agg backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from moviegenre.core.advice import install_extra
from moviegenre.core.data import Movies
from moviegenre.core.errors import DataError, MovieGenreError
from moviegenre.core.files import atomic_path, atomic_write
from moviegenre.core.genres import GENRES
from moviegenre.model.genre_model import GenreModel
from moviegenre.training.evaluate import model_metrics, reliability

MAIN_GENRES = 6
FIGURES = ("auc_per_genre.png", "roc_curves.png", "reliability.png", "f1_per_genre.png")
#: The colour of "before calibration" in the reliability diagram: one the genres' curves, drawn
#: in matplotlib's first colours, do not use.
_BEFORE = "#9467bd"


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise MovieGenreError(f"the report needs matplotlib: {install_extra('report')}") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def write_report(model: GenreModel, movies: Movies, out_dir: str | Path) -> Path:
    """Evaluate ``model`` on labelled ``movies`` and write the report into ``out_dir``.

    Returns the path of ``report.md``.
    """
    if movies.labels is None:
        raise DataError(f"{movies.source} has no 'genres' column; the report needs labelled data")
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    uncalibrated = model.predict_proba(movies.frame, calibrated=False)
    proba = model.calibration.apply(uncalibrated)
    labels = movies.labels
    metrics = model_metrics(model, labels, uncalibrated)
    main = [int(i) for i in np.argsort(-labels.sum(axis=0), kind="stable")[:MAIN_GENRES]]
    drawers = {
        "auc_per_genre.png": lambda: _auc_bars(plt, metrics),
        "roc_curves.png": lambda: _roc_curves(plt, labels, proba, main),
        "reliability.png": lambda: _reliability(plt, labels, proba, uncalibrated, main),
        "f1_per_genre.png": lambda: _f1_bars(plt, metrics),
    }
    for name, draw in drawers.items():
        figure = draw()
        with atomic_path(out_dir / name) as path:
            figure.savefig(path, dpi=120, format="png")
        plt.close(figure)
    payload = {"model": {"id": model.id, "kind": model.kind},
               "data": {"source": movies.source, "sha256": movies.sha256}, **metrics}
    with atomic_write(out_dir / "metrics.json") as handle:
        handle.write(json.dumps(payload, indent=2) + "\n")
    report = out_dir / "report.md"
    with atomic_write(report) as handle:
        handle.write(_markdown(model, movies, labels, metrics))
    return report


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _markdown(model: GenreModel, movies: Movies, labels: np.ndarray, metrics: dict[str, Any]) -> str:
    sets, calibration, before = metrics["label_sets"], metrics["calibration"], metrics["calibration_uncalibrated"]
    cv = (model.metadata.get("metrics") or {}).get("cv") or {}
    lines = [
        f"# Model report: {model.id}",
        "",
        f"Kind `{model.kind}`, evaluated on {metrics['n']} labelled movies from "
        f"`{movies.source}` (sha256 `{movies.sha256[:12]}…`).",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| macro ROC AUC | {_fmt(metrics['macro_auc'], 4)} |",
        f"| micro ROC AUC | {_fmt(metrics['micro_auc'], 4)} |",
        f"| label sets: micro F1 | {_fmt(sets['micro_f1'], 4)} |",
        f"| label sets: macro F1 | {_fmt(sets['macro_f1'], 4)} |",
        f"| label sets: samples F1 | {_fmt(sets['samples_f1'], 4)} |",
        f"| Brier score (mean over genres) | {_fmt(calibration['brier'], 4)} |",
        f"| expected calibration error (mean over genres) | {_fmt(calibration['ece'], 4)} |",
        f"| before calibration: Brier score | {_fmt(before['brier'], 4)} |",
        f"| before calibration: expected calibration error | {_fmt(before['ece'], 4)} |",
        f"| before calibration: macro ROC AUC | {_fmt(metrics['macro_auc_uncalibrated'], 4)} |",
    ]
    if cv:
        lines.append(f"| cross-validated macro ROC AUC at training ({cv.get('cv_folds')} folds) "
                     f"| {_fmt(cv.get('macro_auc'), 4)} |")
    if metrics["genres_without_auc"]:
        lines += ["", "No ROC AUC (no positive movies in this data): "
                  + ", ".join(metrics["genres_without_auc"]) + "."]
    threshold_note = model.metadata.get("threshold_objective") or "fixed at 0.5"
    lines += [
        "",
        f"Label sets use the model's per-genre thresholds ({threshold_note}).",
        _calibration_note(metrics["calibration_methods"]),
        "",
        "## Per genre",
        "",
        "| genre | movies | ROC AUC | F1 | threshold | calibration | Brier | ECE before | ECE |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    positives = labels.sum(axis=0)
    for i, genre in enumerate(GENRES):
        lines.append(
            f"| {genre} | {int(positives[i])} | {_fmt(metrics['per_genre'][genre])} "
            f"| {_fmt(sets['per_genre_f1'][genre])} | {model.thresholds[i]:.2f} "
            f"| {model.calibration.maps[genre]['method']} "
            f"| {_fmt(calibration['per_genre_brier'][genre])} "
            f"| {_fmt(before['per_genre_ece'][genre])} "
            f"| {_fmt(calibration['per_genre_ece'][genre])} |"
        )
    lines += [
        "",
        "## Figures",
        "",
        "![ROC AUC per genre](auc_per_genre.png)",
        "",
        "![ROC curves of the most frequent genres](roc_curves.png)",
        "",
        "![Reliability diagram](reliability.png)",
        "",
        "![Label-set F1 per genre](f1_per_genre.png)",
        "",
    ]
    return "\n".join(lines)


def _calibration_note(methods: dict[str, int]) -> str:
    if methods["identity"] == len(GENRES):
        return ("Probabilities are not calibrated (the model was trained without cross-validation, or "
                "before moviegenre calibrated), so the figures before and after calibration are the same.")
    counts = ", ".join(f"{method} for {n}" for method, n in methods.items() if n)
    return (f"Probabilities are calibrated per genre ({counts} genres); the figures \"before "
            "calibration\" are of the model's probabilities before that.")


def _sorted_bars(plt, values: dict[str, float | None], title: str, xlabel: str,
                 reference: float | None, reference_label: str):
    items = sorted(((g, v) for g, v in values.items() if v is not None), key=lambda kv: kv[1])
    figure, axes = plt.subplots(figsize=(8, 7.5), layout="constrained")
    names = [g for g, _ in items]
    heights = [v for _, v in items]
    bars = axes.barh(names, heights, color="#4c72b0")
    axes.bar_label(bars, labels=[f"{v:.3f}" for v in heights], padding=3, fontsize=8)
    if reference is not None:
        axes.axvline(reference, color="#c44e52", linestyle="--", label=reference_label)
        axes.legend(loc="lower right")
    axes.set_xlim(0, 1.08)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.tick_params(axis="y", labelsize=9)
    return figure


def _auc_bars(plt, metrics: dict[str, Any]):
    return _sorted_bars(plt, metrics["per_genre"], "ROC AUC per genre", "ROC AUC",
                        metrics["macro_auc"], f"macro {metrics['macro_auc']:.3f}")


def _f1_bars(plt, metrics: dict[str, Any]):
    sets = metrics["label_sets"]
    return _sorted_bars(plt, sets["per_genre_f1"], "Label-set F1 per genre (tuned thresholds)",
                        "F1", sets["macro_f1"], f"macro {sets['macro_f1']:.3f}")


def _roc_curves(plt, labels: np.ndarray, proba: np.ndarray, main: list[int]):
    from sklearn.metrics import roc_auc_score, roc_curve

    figure, axes = plt.subplots(figsize=(7, 6.5), layout="constrained")
    for i in main:
        if 0 < labels[:, i].sum() < len(labels):
            fpr, tpr, _ = roc_curve(labels[:, i], proba[:, i])
            auc = roc_auc_score(labels[:, i], proba[:, i])
            axes.plot(fpr, tpr, label=f"{GENRES[i]} (AUC {auc:.3f}, n={int(labels[:, i].sum())})")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title("ROC curves, most frequent genres")
    axes.legend(loc="lower right", fontsize=9)
    axes.set_aspect("equal")
    return figure


def _reliability_points(y: np.ndarray, p: np.ndarray, min_count: int = 1):
    """Mean prediction and observed frequency per equal-width bin holding ``min_count`` or
    more predictions (fewer make a point that is mostly noise)."""
    observed, predicted, counts = reliability(y, p)
    keep = counts >= min_count
    return predicted[keep], observed[keep], counts[keep]


def _reliability(plt, labels: np.ndarray, proba: np.ndarray, uncalibrated: np.ndarray, main: list[int]):
    figure, (curve, hist) = plt.subplots(
        2, 1, figsize=(7, 8), height_ratios=(3, 1), sharex=True, layout="constrained"
    )
    curve.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    x, y, _ = _reliability_points(labels.ravel(), uncalibrated.ravel())
    curve.plot(x, y, marker="s", color=_BEFORE, linestyle="--", linewidth=1.5,
               label="all genres pooled, before calibration")
    x, y, _ = _reliability_points(labels.ravel(), proba.ravel())
    curve.plot(x, y, marker="o", color="black", linewidth=2.5, label="all genres pooled")
    for i in main[:4]:
        x, y, _ = _reliability_points(labels[:, i], proba[:, i], min_count=10)
        curve.plot(x, y, marker=".", alpha=0.8, label=GENRES[i])
    curve.set_ylabel("observed frequency")
    curve.set_xlim(0, 1)
    curve.set_ylim(0, 1)
    curve.set_title("Reliability diagram (10 equal-width bins; genres: bins of 10+)")
    curve.legend(loc="upper left", fontsize=9)
    edges = np.linspace(0, 1, 11)
    hist.hist(uncalibrated.ravel(), bins=edges, histtype="step", color=_BEFORE, linestyle="--", log=True,
              label="before calibration")
    hist.hist(proba.ravel(), bins=edges, color="#4c72b0", log=True, label="calibrated")
    hist.legend(loc="upper right", fontsize=8)
    hist.set_xlabel("predicted probability")
    hist.set_ylabel("predictions (log)")
    return figure
