"""Calibrated probabilities: fitting and applying the per-genre maps, model.json, every path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import expit, logit
from typer.testing import CliRunner

from conftest import E1_PLOT, E2_PLOT, editing_model_json
from moviegenre.cli import app
from moviegenre.core.errors import ModelError
from moviegenre.core.genres import GENRES
from moviegenre.core.items import to_frame
from moviegenre.model.artifact import load_model
from moviegenre.model.calibration import MAX_BREAKPOINTS, Calibration
from moviegenre.model.genre_model import GenreModel, PipelineScorer
from moviegenre.training.evaluate import calibration_metrics, evaluate

GRID = np.linspace(0.0, 1.0, 2001)


def overconfident(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn at a true chance, and probabilities that overstate it, differently per genre
    (too high, too low, too sure), as a model trained with balanced class weights gives them."""
    rng = np.random.default_rng(seed)
    true = expit(rng.normal(-2.0, 1.5, size=(n, len(GENRES))))
    labels = (rng.random(true.shape) < true).astype(int)
    stretch = np.linspace(0.5, 2.5, len(GENRES))
    shift = np.linspace(-1.0, 1.5, len(GENRES))
    return labels, expit(stretch * logit(true) + shift)


@pytest.fixture(scope="module")
def synthetic():
    labels, proba = overconfident(4000)
    return labels, proba, Calibration.fit(labels, proba)


# --- fitting and applying ----------------------------------------------------------------------


def test_calibration_lowers_the_error_on_fresh_rows(synthetic):
    _, _, calibration = synthetic
    labels, proba = overconfident(4000, seed=1)
    before = calibration_metrics(labels, proba)
    after = calibration_metrics(labels, calibration.apply(proba))
    assert after["ece"] < before["ece"] / 3
    assert after["brier"] < before["brier"]
    assert sum(calibration.methods.values()) == len(GENRES) and calibration.methods["identity"] == 0


def test_each_genre_gets_the_method_that_fits_its_shape():
    """Platt scaling can only stretch and shift logits: a chance that jumps at one probability
    (a step) needs isotonic regression, and cross-validation sees it."""
    labels, proba = overconfident(4000)
    rng = np.random.default_rng(2)
    scores = rng.random(len(labels))
    chance = np.where(scores < 0.7, 0.05, 0.6)
    labels[:, 12:] = rng.random((len(labels), 12)) < chance[:, None]
    proba[:, 12:] = scores[:, None]
    methods = [m["method"] for m in Calibration.fit(labels, proba).maps.values()]
    assert methods == ["platt"] * 12 + ["isotonic"] * 12


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_each_method_keeps_each_genres_ranking(method):
    labels, proba = overconfident(3000)
    calibration = Calibration.fit(labels, proba, methods=[method])
    assert calibration.methods[method] == len(GENRES)
    mapped = calibration.apply(np.repeat(GRID[:, None], len(GENRES), axis=1))
    steps = np.diff(mapped, axis=0)
    assert np.all(steps >= 0), "a calibration map never reverses the order of two movies"
    assert np.all((mapped >= 0) & (mapped <= 1))
    if method == "platt":
        assert np.all(steps[1:-1] > 0), "Platt scaling makes no ties"
    else:
        assert (steps == 0).any(), "isotonic regression's flat blocks make ties"


def test_isotonic_maps_keep_at_most_the_bounded_number_of_breakpoints():
    labels, proba = overconfident(60_000)
    calibration = Calibration.fit(labels, proba, methods=["isotonic"])
    assert max(len(m["x"]) for m in calibration.maps.values()) == MAX_BREAKPOINTS  # thinned, still monotone
    assert all(np.all(np.diff(m["y"]) >= 0) for m in calibration.maps.values())


def test_genres_without_positives_or_negatives_get_the_identity(synthetic):
    labels, proba, _ = synthetic
    labels = labels.copy()
    labels[:, GENRES.index("News")] = 0
    labels[:, GENRES.index("Drama")] = 1
    calibration = Calibration.fit(labels, proba)
    assert calibration.maps["News"] == calibration.maps["Drama"] == {"method": "identity"}
    calibrated = calibration.apply(proba)
    for genre in ("News", "Drama"):
        assert np.array_equal(calibrated[:, GENRES.index(genre)], proba[:, GENRES.index(genre)])


def test_a_rare_genre_gets_platt_scaling_without_a_choice(synthetic):
    labels, proba, _ = synthetic
    labels = labels.copy()
    news = GENRES.index("News")
    labels[:, news] = 0
    labels[np.argsort(-proba[:, news])[:3], news] = 1  # three positives, fewer than the folds
    assert Calibration.fit(labels, proba).maps["News"]["method"] == "platt"


def test_cross_fitted_probabilities_are_honest_and_close(synthetic):
    labels, proba, calibration = synthetic
    honest, in_sample = calibration.cross_fitted, calibration.apply(proba)
    assert honest.shape == proba.shape and not np.array_equal(honest, in_sample)
    assert calibration_metrics(labels, honest)["ece"] < calibration_metrics(labels, proba)["ece"] / 3


def test_json_round_trip_gives_the_same_probabilities(synthetic):
    _, proba, calibration = synthetic
    payload = json.loads(json.dumps(calibration.to_json()))
    again = Calibration.from_json(payload)
    assert again.maps == calibration.maps
    assert np.array_equal(again.apply(proba), calibration.apply(proba))
    assert np.array_equal(Calibration.from_json(None).apply(proba), proba)


def test_apply_does_not_change_its_input(synthetic):
    _, proba, calibration = synthetic
    kept = proba.copy()
    calibration.apply(proba)
    assert np.array_equal(proba, kept)


def one_genre_at_a_time(calibration: Calibration, proba: np.ndarray) -> np.ndarray:
    """The maps applied as they were defined, one genre's column at a time, with scipy's
    ``expit``/``logit`` and ``np.interp``: what :meth:`Calibration.apply` must give."""
    out = np.array(proba, dtype=float)
    for i, genre in enumerate(GENRES):
        entry = calibration.maps[genre]
        if entry["method"] == "platt":
            out[:, i] = expit(entry["a"] * logit(np.clip(proba[:, i], 1e-12, 1 - 1e-12)) + entry["b"])
        elif entry["method"] == "isotonic":
            x, y = entry["x"], entry["y"]
            out[:, i] = np.interp(np.clip(proba[:, i], 0.0, 1.0), x, y, left=y[0], right=y[-1])
    return out


def test_applying_every_genre_at_once_gives_the_one_genre_maps_on_real_model_outputs(small_model, dev_movies):
    """The small model's own calibration (Platt for most genres) on its probabilities for 500
    real plots, one plot per call as a server scores, and all at once; and the same maps with
    some genres made identity and isotonic, and one Platt map steep enough that exp could
    overflow (the guarded branch)."""
    plots = dev_movies.frame["plot"].tolist()[:500]
    raw = small_model.predict_proba(plots, calibrated=False)
    edges = np.array([[0.0] * 12 + [1.0] * 12, [1e-300] * 24, [1 - 1e-17] * 24])  # the clip's edges
    raw = np.vstack([raw, edges])
    calibration = small_model.calibration
    assert calibration.methods["platt"] >= 12
    expected = one_genre_at_a_time(calibration, raw)
    assert np.abs(calibration.apply(raw) - expected).max() <= 1e-12
    rows = np.vstack([calibration.apply(row[None, :]) for row in raw])
    assert np.abs(rows - expected).max() <= 1e-12

    maps = dict(calibration.maps)
    maps[GENRES[0]] = {"method": "identity"}
    maps[GENRES[1]] = {"method": "isotonic", "x": [0.0, 0.1, 0.5, 0.9], "y": [0.0, 0.2, 0.2, 0.95]}
    maps[GENRES[2]] = {"method": "platt", "a": 40.0, "b": -3.0}  # |40 * logit| can pass 709
    mixed = Calibration(maps)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # no warning escapes either branch
        assert np.abs(mixed.apply(raw) - one_genre_at_a_time(mixed, raw)).max() <= 1e-12
        assert np.abs(mixed.apply(raw[:1]) - one_genre_at_a_time(mixed, raw[:1])).max() <= 1e-12


def with_map(genre: str, entry) -> dict:
    genres = {g: {"method": "identity"} for g in GENRES}
    genres[genre] = entry
    return {"labels": genres}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([], r"field 'calibration' must be an object"),
        ({"labels": {"Action": {"method": "identity"}}}, r"'calibration.labels' must name the model's 24 labels"),
        (with_map("Comedy", {"method": "magic"}), r"'calibration.labels.Comedy.method' must be one of"),
        (with_map("Comedy", "platt"), r"'calibration.labels.Comedy.method'"),
        (with_map("Comedy", {"method": "platt", "a": 1.0}), r"'calibration.labels.Comedy.b' must be a finite number"),
        (with_map("Comedy", {"method": "platt", "a": "1", "b": 0}), r"'calibration.labels.Comedy.a' must be a finite"),
        (with_map("Comedy", {"method": "platt", "a": -0.5, "b": 0}), r"'calibration.labels.Comedy.a' must be positive"),
        (with_map("Crime", {"method": "isotonic", "x": [0.1, 0.9], "y": [0.2, 0.5, 0.7]}), r"'calibration.labels.Crime.x' and"),
        (with_map("Crime", {"method": "isotonic", "x": [0.9, 0.1], "y": [0, 1]}), r"'calibration.labels.Crime.x' must be non-decreasing"),
        (with_map("Crime", {"method": "isotonic", "x": [0.1, 0.9], "y": [0, 1.5]}), r"'calibration.labels.Crime.y' must be non-decreasing"),
        (with_map("Crime", {"method": "isotonic", "x": [0.1, None], "y": [0, 1]}), r"'calibration.labels.Crime.x\[1\]'"),
        (with_map("Crime", {"method": "isotonic", "x": [0.5], "y": [0.5]}), r"'calibration.labels.Crime.x' must be a list of 2 to"),
        (with_map("Crime", {"method": "isotonic", "x": list(np.linspace(0, 1, MAX_BREAKPOINTS + 1)),
                            "y": list(np.linspace(0, 1, MAX_BREAKPOINTS + 1))}), r"must be a list of 2 to 200"),
        ({**with_map("War", {"method": "identity"}), "fitted_on": 3}, r"'calibration.fitted_on' must be text"),
    ],
)
def test_malformed_calibration_is_refused_naming_the_field(payload, field):
    with pytest.raises(ModelError, match=field):
        Calibration.from_json(payload)


# --- the trained model -------------------------------------------------------------------------


def test_the_small_model_stores_a_calibration_and_calibrated_cv_figures(small_model_dir, small_model):
    meta = json.loads((small_model_dir / "model.json").read_text())
    stored = meta["calibration"]
    assert list(stored["labels"]) == list(GENRES) and "2-fold" in stored["fitted_on"]
    assert Calibration.from_json(stored).maps == small_model.calibration.maps
    assert small_model.calibration.methods["identity"] < len(GENRES)
    cv = meta["metrics"]["cv"]
    assert cv["calibration"]["ece"] < cv["calibration_uncalibrated"]["ece"]
    assert abs(cv["macro_auc"] - cv["macro_auc_uncalibrated"]) < 0.005
    assert "fitted without it" in cv["calibrated_by"]
    assert meta["threshold_objective"] == "per-genre F1 on out-of-fold predictions, calibrated"


def test_the_fast_path_and_the_pipeline_path_give_the_same_calibrated_probabilities(small_model):
    items = [E1_PLOT, {"plot": E2_PLOT, "title": "Heat", "year": 1995}]
    pipeline = small_model.pipeline
    by_pipeline = GenreModel(pipeline, small_model.metadata, scorer=PipelineScorer(pipeline))
    fast = small_model.predict_proba(items)
    assert not isinstance(small_model.scorer, PipelineScorer)
    assert np.abs(fast - by_pipeline.predict_proba(items)).max() <= 1e-9
    raw = pipeline.predict_proba(to_frame(items))
    assert np.abs(small_model.predict_proba(items, calibrated=False) - raw).max() <= 1e-9
    assert np.abs(fast - small_model.calibration.apply(raw)).max() <= 1e-9
    assert np.abs(fast - raw).max() > 0.01, "calibration changes what the model serves"


def test_calibration_helps_on_movies_the_model_never_saw(small_model, dev_movies):
    seen = np.random.default_rng(0).choice(len(dev_movies), 2000, replace=False)  # as conftest draws
    unseen = dev_movies.subset(np.setdiff1d(np.arange(len(dev_movies)), seen))
    result = evaluate(small_model, unseen)
    assert result["calibration"]["ece"] < result["calibration_uncalibrated"]["ece"]
    assert result["calibration"]["brier"] < result["calibration_uncalibrated"]["brier"]
    assert abs(result["macro_auc"] - result["macro_auc_uncalibrated"]) <= 0.002
    assert sum(result["calibration_methods"].values()) == len(GENRES)


def test_a_damaged_calibration_in_model_json_is_refused_at_load(model_copy):
    with editing_model_json(model_copy) as meta:
        meta["calibration"]["labels"]["Western"] = {"method": "isotonic", "x": [0.2, 0.1], "y": [0.0, 1.0]}
    with pytest.raises(ModelError, match=r"model\.json: field 'calibration\.labels\.Western\.x' must be non-decreasing"):
        load_model(model_copy)


def test_a_model_without_calibration_is_served_uncalibrated(model_copy, small_model):
    with editing_model_json(model_copy) as meta:
        del meta["calibration"]
    model = load_model(model_copy)
    assert model.calibration.methods["identity"] == len(GENRES)
    proba = model.predict_proba([E1_PLOT, E2_PLOT])
    assert np.array_equal(proba, small_model.predict_proba([E1_PLOT, E2_PLOT], calibrated=False))


def test_evaluate_prints_the_calibration_before_and_after(small_model_dir, tmp_path, dev_movies):
    data = tmp_path / "some.csv"
    frame = dev_movies.frame.iloc[-300:].copy()
    frame["genres"] = [str([g for g, on in zip(GENRES, row, strict=True) if on]) for row in dev_movies.labels[-300:]]
    frame.rename_axis("ID").to_csv(data)
    result = CliRunner().invoke(app, ["evaluate", "--model", str(small_model_dir), "--data", str(data)])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if line.startswith("calibration:"))
    assert "ECE" in line and "->" in line and "Brier" in line and "platt" in line.lower()  # "Platt scaling for 23 genres"
