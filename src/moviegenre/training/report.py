"""A Markdown report of a model on labelled movies: the metrics table and PNG figures.

``write_report`` scores the movies once, then writes into one folder:

* ``report.md``: headline metrics, a per-label table, and the figures below;
* ``auc_per_genre.png``: ROC AUC per label, bars sorted, with the macro average marked;
* ``roc_curves.png``: ROC curves of the most frequent labels;
* ``reliability.png``: predicted probability against observed frequency (all labels pooled,
  before and after the model's calibration, and the most frequent labels), with the number of
  predictions per bin;
* ``f1_per_genre.png``: label-set F1 per label at the model's tuned thresholds;
* ``metrics.json``: every number in the report.

The report names the model's own labels (:attr:`~moviegenre.model.genre_model.GenreModel.labels`)
everywhere, and its heading the model's title when it has one. A model of the course's 24
genres calls them genres, as it always did; a model of its own labels calls them labels. The
figure files keep their names whatever the labels.

matplotlib (the ``report`` extra) is imported only here, with the non-interactive Agg backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from moviegenre.core.advice import install_extra
from moviegenre.core.data import Movies
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_path, atomic_write
from moviegenre.core.labels import label_noun
from moviegenre.model.genre_model import GenreModel
from moviegenre.training.evaluate import model_metrics, reliability, require_the_models_labels

MAIN_GENRES = 6
FIGURES = ("auc_per_genre.png", "roc_curves.png", "reliability.png", "f1_per_genre.png")
#: Most bars in a per-label figure: a model of more labels shows its highest and lowest, half each.
MAX_BARS = 60
#: Characters escaped in a label name or title written into Markdown, so that it reads as text
#: (a ``|`` would split a table cell, a ``*`` or ``_`` start emphasis, a ``<`` an HTML tag).
_MARKDOWN_SPECIAL = frozenset("\\`*_[]<>|")
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
    require_the_models_labels(model, movies, "the report")
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    uncalibrated = model.predict_proba(movies.frame, calibrated=False)
    proba = model.calibration.apply(uncalibrated)
    labels = movies.labels
    metrics = model_metrics(model, labels, uncalibrated)
    main = [int(i) for i in np.argsort(-labels.sum(axis=0), kind="stable")[:MAIN_GENRES]]
    words = _Words(model.labels)
    drawers = {
        "auc_per_genre.png": lambda: _auc_bars(plt, metrics, words),
        "roc_curves.png": lambda: _roc_curves(plt, labels, proba, main, words),
        "reliability.png": lambda: _reliability(plt, labels, proba, uncalibrated, main, words),
        "f1_per_genre.png": lambda: _f1_bars(plt, metrics, words),
    }
    for name, draw in drawers.items():
        figure = draw()
        with atomic_path(out_dir / name) as path:
            figure.savefig(path, dpi=120, format="png")
        plt.close(figure)
    about = {"id": model.id, "kind": model.kind, **({"title": model.title} if model.title else {})}
    payload = {"model": about,
               "data": {"source": movies.source, "sha256": movies.sha256}, **metrics}
    with atomic_write(out_dir / "metrics.json") as handle:
        handle.write(json.dumps(payload, indent=2) + "\n")
    report = out_dir / "report.md"
    with atomic_write(report) as handle:
        handle.write(_markdown(model, movies, labels, metrics))
    return report


class _Words:
    """How the report names a model's labels: "genre" for the course's 24 genres (the report
    reads as it always did), "label" for a model of its own labels."""

    def __init__(self, names: tuple[str, ...]):
        self.names = tuple(names)
        self.one = label_noun(self.names)
        self.many = self.one + "s"

    def per(self) -> str:
        return f"per {self.one}"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _md(text: str) -> str:
    """``text`` (a label name, a title) as Markdown text on one line: white space runs made one
    space, Markdown's special characters escaped."""
    return "".join("\\" + char if char in _MARKDOWN_SPECIAL else char for char in " ".join(text.split()))


def _plain(text: str) -> str:
    """``text`` as matplotlib draws it literally: a ``$`` would start mathematical text."""
    return text.replace("$", r"\$")


def _heading(model: GenreModel) -> str:
    if model.title:
        return f"# Model report: {_md(model.title)} ({_md(model.id)})"
    return f"# Model report: {model.id}"


def _markdown(model: GenreModel, movies: Movies, labels: np.ndarray, metrics: dict[str, Any]) -> str:
    sets, calibration, before = metrics["label_sets"], metrics["calibration"], metrics["calibration_uncalibrated"]
    cv = (model.metadata.get("metrics") or {}).get("cv") or {}
    words = _Words(model.labels)
    count = "" if words.one == "genre" else f"{len(words.names)} labels, "
    lines = [
        _heading(model),
        "",
        f"Kind `{model.kind}`, {count}evaluated on {metrics['n']} labelled movies from "
        f"`{movies.source}` (sha256 `{movies.sha256[:12]}…`).",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| macro ROC AUC | {_fmt(metrics['macro_auc'], 4)} |",
        f"| micro ROC AUC | {_fmt(metrics['micro_auc'], 4)} |",
        f"| label sets: micro F1 | {_fmt(sets['micro_f1'], 4)} |",
        f"| label sets: macro F1 | {_fmt(sets['macro_f1'], 4)} |",
        f"| label sets: samples F1 | {_fmt(sets['samples_f1'], 4)} |",
        f"| Brier score (mean over {words.many}) | {_fmt(calibration['brier'], 4)} |",
        f"| expected calibration error (mean over {words.many}) | {_fmt(calibration['ece'], 4)} |",
        f"| before calibration: Brier score | {_fmt(before['brier'], 4)} |",
        f"| before calibration: expected calibration error | {_fmt(before['ece'], 4)} |",
        f"| before calibration: macro ROC AUC | {_fmt(metrics['macro_auc_uncalibrated'], 4)} |",
    ]
    if cv:
        lines.append(f"| cross-validated macro ROC AUC at training ({cv.get('cv_folds')} folds) "
                     f"| {_fmt(cv.get('macro_auc'), 4)} |")
    if metrics["genres_without_auc"]:
        lines += ["", "No ROC AUC (no positive movies in this data): "
                  + ", ".join(_md(name) for name in metrics["genres_without_auc"]) + "."]
    threshold_note = model.metadata.get("threshold_objective") or "fixed at 0.5"
    lines += [
        "",
        f"Label sets use the model's per-{words.one} thresholds ({threshold_note}).",
        _calibration_note(metrics["calibration_methods"], words),
        "",
        f"## Per {words.one}",
        "",
        f"| {words.one} | movies | ROC AUC | F1 | threshold | calibration | Brier | ECE before | ECE |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    positives = labels.sum(axis=0)
    for i, name in enumerate(words.names):
        lines.append(
            f"| {_md(name)} | {int(positives[i])} | {_fmt(metrics['per_genre'][name])} "
            f"| {_fmt(sets['per_genre_f1'][name])} | {model.thresholds[i]:.2f} "
            f"| {model.calibration.maps[name]['method']} "
            f"| {_fmt(calibration['per_genre_brier'][name])} "
            f"| {_fmt(before['per_genre_ece'][name])} "
            f"| {_fmt(calibration['per_genre_ece'][name])} |"
        )
    lines += [
        "",
        "## Figures",
        "",
        f"![ROC AUC per {words.one}](auc_per_genre.png)",
        "",
        f"![ROC curves of the most frequent {words.many}](roc_curves.png)",
        "",
        "![Reliability diagram](reliability.png)",
        "",
        f"![Label-set F1 per {words.one}](f1_per_genre.png)",
        "",
    ]
    return "\n".join(lines)


def _calibration_note(methods: dict[str, int], words: _Words) -> str:
    if methods["identity"] == len(words.names):
        return ("Probabilities are not calibrated (the model was trained without cross-validation, or "
                "before moviegenre calibrated), so the figures before and after calibration are the same.")
    counts = ", ".join(f"{method} for {n}" for method, n in methods.items() if n)
    return (f"Probabilities are calibrated {words.per()} ({counts} {words.many}); the figures \"before "
            "calibration\" are of the model's probabilities before that.")


def _sorted_bars(plt, values: dict[str, float | None], title: str, xlabel: str,
                 reference: float | None, reference_label: str):
    items = sorted(((g, v) for g, v in values.items() if v is not None), key=lambda kv: kv[1])
    if len(items) > MAX_BARS:  # the lowest and the highest, half each
        shown = len(items)
        items = items[: MAX_BARS // 2] + items[-(MAX_BARS - MAX_BARS // 2):]
        title = f"{title} (the {MAX_BARS // 2} lowest and {MAX_BARS - MAX_BARS // 2} highest of {shown})"
    height = 7.5 if len(items) <= 24 else 1.5 + 0.25 * len(items)
    figure, axes = plt.subplots(figsize=(8, height), layout="constrained")
    # Positions, not the names: a name is never read as a number or a date, and any name is a tick.
    positions = np.arange(len(items))
    heights = [v for _, v in items]
    bars = axes.barh(positions, heights, color="#4c72b0")
    axes.set_yticks(positions, [_plain(name) for name, _ in items])
    axes.bar_label(bars, labels=[f"{v:.3f}" for v in heights], padding=3, fontsize=8)
    if reference is not None:
        axes.axvline(reference, color="#c44e52", linestyle="--", label=reference_label)
        axes.legend(loc="lower right")
    axes.set_xlim(0, 1.08)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.tick_params(axis="y", labelsize=9)
    return figure


def _auc_bars(plt, metrics: dict[str, Any], words: _Words):
    return _sorted_bars(plt, metrics["per_genre"], f"ROC AUC {words.per()}", "ROC AUC",
                        metrics["macro_auc"], f"macro {metrics['macro_auc']:.3f}")


def _f1_bars(plt, metrics: dict[str, Any], words: _Words):
    sets = metrics["label_sets"]
    return _sorted_bars(plt, sets["per_genre_f1"], f"Label-set F1 {words.per()} (tuned thresholds)",
                        "F1", sets["macro_f1"], f"macro {sets['macro_f1']:.3f}")


def _roc_curves(plt, labels: np.ndarray, proba: np.ndarray, main: list[int], words: _Words):
    from sklearn.metrics import roc_auc_score, roc_curve

    figure, axes = plt.subplots(figsize=(7, 6.5), layout="constrained")
    for i in main:
        if 0 < labels[:, i].sum() < len(labels):
            fpr, tpr, _ = roc_curve(labels[:, i], proba[:, i])
            auc = roc_auc_score(labels[:, i], proba[:, i])
            axes.plot(fpr, tpr, label=f"{_plain(words.names[i])} (AUC {auc:.3f}, n={int(labels[:, i].sum())})")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title(f"ROC curves, most frequent {words.many}")
    axes.legend(loc="lower right", fontsize=9)
    axes.set_aspect("equal")
    return figure


def _reliability_points(y: np.ndarray, p: np.ndarray, min_count: int = 1):
    """Mean prediction and observed frequency per equal-width bin holding ``min_count`` or
    more predictions (fewer make a point that is mostly noise)."""
    observed, predicted, counts = reliability(y, p)
    keep = counts >= min_count
    return predicted[keep], observed[keep], counts[keep]


def _reliability(plt, labels: np.ndarray, proba: np.ndarray, uncalibrated: np.ndarray, main: list[int],
                 words: _Words):
    figure, (curve, hist) = plt.subplots(
        2, 1, figsize=(7, 8), height_ratios=(3, 1), sharex=True, layout="constrained"
    )
    curve.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    x, y, _ = _reliability_points(labels.ravel(), uncalibrated.ravel())
    curve.plot(x, y, marker="s", color=_BEFORE, linestyle="--", linewidth=1.5,
               label=f"all {words.many} pooled, before calibration")
    x, y, _ = _reliability_points(labels.ravel(), proba.ravel())
    curve.plot(x, y, marker="o", color="black", linewidth=2.5, label=f"all {words.many} pooled")
    for i in main[:4]:
        x, y, _ = _reliability_points(labels[:, i], proba[:, i], min_count=10)
        curve.plot(x, y, marker=".", alpha=0.8, label=_plain(words.names[i]))
    curve.set_ylabel("observed frequency")
    curve.set_xlim(0, 1)
    curve.set_ylim(0, 1)
    curve.set_title(f"Reliability diagram (10 equal-width bins; {words.many}: bins of 10+)")
    curve.legend(loc="upper left", fontsize=9)
    edges = np.linspace(0, 1, 11)
    hist.hist(uncalibrated.ravel(), bins=edges, histtype="step", color=_BEFORE, linestyle="--", log=True,
              label="before calibration")
    hist.hist(proba.ravel(), bins=edges, color="#4c72b0", log=True, label="calibrated")
    hist.legend(loc="upper right", fontsize=8)
    hist.set_xlabel("predicted probability")
    hist.set_ylabel("predictions (log)")
    return figure
