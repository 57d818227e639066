"""Model kinds as plug-ins: a kind registered from this module alone is trained, saved, loaded,
scored, batch-scored, served and explained through the ordinary paths; and the registry's rules
(options, parameters as model.json records them, loud compile failures)."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import E1_PLOT, E2_PLOT, dev_sample, offline_encoder
from moviegenre.api.app import create_app
from moviegenre.batch.scoring import LocalEngine, score_files
from moviegenre.core.errors import ModelError, UsageError
from moviegenre.core.genres import GENRES, PROBABILITY_KEYS
from moviegenre.core.settings import Settings
from moviegenre.fast.linear import FastLinear
from moviegenre.kinds import registry
from moviegenre.kinds.compile import NotCompilable, compile_linear, verified
from moviegenre.kinds.registry import ModelKind, compiled_form, describe_params, get_kind, prepare_params, register
from moviegenre.model.artifact import load_model, save_model
from moviegenre.training.train import train

TOY = "toy-plot-words"


def build_toy(*, C: float, max_features: int):
    """TF-IDF of the plot's words alone, one logistic regression per genre."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import Pipeline

    features = ColumnTransformer([("plot_words", TfidfVectorizer(sublinear_tf=True, max_features=max_features), "plot")])
    return Pipeline([("features", features),
                     ("classifier", OneVsRestClassifier(LogisticRegression(C=C, solver="liblinear")))])


def explain_toy(model):
    from moviegenre.kinds.explainers import compiled_explainer

    return compiled_explainer(model)


def cannot_compile(fitted):
    raise NotCompilable("the toy's compiler refuses everything")


@pytest.fixture(scope="module")
def kinds():
    """The toy kinds, registered for this module's tests and removed after them."""
    added = [
        register(ModelKind(name=TOY, description="Plot words only (a test's toy kind).", build=build_toy,
                           defaults={"C": 4.0, "max_features": 3000}, compile=verified(compile_linear),
                           must_compile=True, explainer=explain_toy)),
        register(ModelKind(name="toy-must-compile", description="Cannot compile, must.", build=build_toy,
                           defaults={"C": 1.0, "max_features": 500}, compile=cannot_compile, must_compile=True)),
        register(ModelKind(name="toy-may-compile", description="Cannot compile, need not.", build=build_toy,
                           defaults={"C": 1.0, "max_features": 500}, compile=cannot_compile)),
    ]
    yield {kind.name: kind for kind in added}
    for kind in added:
        registry._KINDS.pop(kind.name)


@pytest.fixture(scope="module")
def sample(dev_movies):
    return dev_sample(dev_movies, 600)


@pytest.fixture(scope="module")
def trained(kinds, sample):
    return train(TOY, sample, cv_folds=2, params={"C": 2.0})


@pytest.fixture(scope="module")
def toy_dir(trained, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("models") / "toy"
    save_model(trained.pipeline, trained.metadata, directory)
    return directory


@pytest.fixture(scope="module")
def loaded(toy_dir):
    return load_model(toy_dir)


ITEMS = [{"plot": E1_PLOT, "title": "Message in a Bottle", "year": 1999}, {"plot": E2_PLOT}]


# --- a kind from this module, through the ordinary paths ----------------------------------------


def test_the_toy_kind_trains_saves_and_loads_with_its_compiled_form(trained, toy_dir, loaded):
    meta = json.loads((toy_dir / "model.json").read_text())
    assert meta["kind"] == TOY and meta["params"]["C"] == 2.0 and [label["name"] for label in meta["labels"]] == list(GENRES)
    assert meta["fast_path"]["form"] == "linear"
    assert isinstance(loaded.scorer, FastLinear)
    np.testing.assert_allclose(loaded.predict_proba(ITEMS), trained.predict_proba(ITEMS), rtol=0, atol=1e-9)
    np.testing.assert_allclose(loaded.pipeline.predict_proba(_frame(ITEMS)),
                               trained.pipeline.predict_proba(_frame(ITEMS)), rtol=0, atol=1e-12)
    assert all(labels for labels in loaded.predict(ITEMS))


def _frame(items):
    from moviegenre.core.items import to_frame

    return to_frame(items, None)


def test_the_toy_kind_batch_scores(loaded, tmp_path):
    source = tmp_path / "movies.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "plot", "title", "year"])
        writer.writerow(["m1", E1_PLOT, "Message in a Bottle", 1999])
        writer.writerow(["m2", E2_PLOT, "", ""])
        writer.writerow(["m3", "", "", ""])  # rejected: no plot
    summary = score_files(LocalEngine(loaded), [source], tmp_path / "scores.csv")
    assert (summary.scored, summary.rejected) == (2, 1)
    with (tmp_path / "scores.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["ID"] for row in rows] == ["m1", "m2"]
    expected = loaded.predict_proba(ITEMS)
    for row, probabilities in zip(rows, expected, strict=True):
        assert [float(row[key]) for key in PROBABILITY_KEYS] == pytest.approx(list(probabilities), abs=1e-6)


def test_the_toy_kind_is_served(toy_dir, loaded):
    with TestClient(create_app(settings=Settings(model=toy_dir, api_key=None))) as client:
        response = client.get("/inference", params={"plot": E1_PLOT})
    assert response.status_code == 200, response.text
    scores = response.json()["clasification"]
    assert list(scores) == list(PROBABILITY_KEYS)
    assert list(scores.values()) == pytest.approx(list(loaded.predict_proba([E1_PLOT])[0]), abs=1e-9)


def test_the_toy_kind_is_explained(loaded):
    """Through the kind's own explainer (``ModelKind.explainer``): the parts add up to the score."""
    from scipy.special import logit

    from moviegenre.model.explain import explain_items

    explanation = explain_items(loaded, [ITEMS[0]], top_genres=3)[0]
    uncalibrated = loaded.predict_proba([ITEMS[0]], calibrated=False)[0]
    assert len(explanation) == 3
    for entry in explanation:
        parts = entry["intercept"] + sum(t["weight"] for t in entry["terms"]) + entry["other_terms"]
        assert parts == pytest.approx(entry["score"], abs=1e-9)
        assert entry["score"] == pytest.approx(logit(uncalibrated[loaded.genres.index(entry["genre"])]), abs=1e-9)
        assert {t["field"] for t in entry["terms"]} <= {"plot"}


# --- loud compile failures ----------------------------------------------------------------------


def test_a_kind_that_must_compile_and_cannot_is_refused_at_save(kinds, sample, tmp_path):
    model = train("toy-must-compile", sample, cv_folds=0)
    with pytest.raises(ModelError, match=r"'toy-must-compile'.*refuses everything.*not saved"):
        save_model(model.pipeline, model.metadata, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def test_a_kind_that_may_compile_warns_when_it_cannot(kinds, sample, caplog):
    model = train("toy-may-compile", sample, cv_folds=0)
    with caplog.at_level(logging.WARNING, logger="moviegenre.kinds.registry"):
        assert compiled_form("toy-may-compile", model.pipeline) is None
    assert "refuses everything" in caplog.text and "100x slower" in caplog.text
    with pytest.raises(ModelError, match="must compile"):
        compiled_form("toy-must-compile", model.pipeline)


def test_kinds_say_whether_they_compile_and_explain():
    assert [(get_kind(name).compile is not None, get_kind(name).must_compile, get_kind(name).explainer is not None)
            for name in ("seed", "linear", "static", "hybrid")] == [
        (False, False, False), (True, True, True), (True, True, True), (False, False, True)]
    assert compiled_form("seed", object()) is None


# --- options and parameters ---------------------------------------------------------------------


def test_an_option_the_kind_does_not_take_names_the_kinds_that_do():
    assert get_kind("static").options == get_kind("hybrid").options == ("encoder",)
    assert get_kind("linear").options == ()
    with pytest.raises(UsageError, match=r"'linear' takes no option 'encoder' \(the kinds that take it: hybrid, static\)"):
        prepare_params("linear", {"encoder": "x"})
    with pytest.raises(UsageError, match="'linear' takes no option 'colour' .no kind takes it"):
        prepare_params("linear", {"colour": "blue"})


def test_prepare_params_finds_the_encoder_and_places_the_caches(tmp_path):
    assert prepare_params("linear", {"C": 3.0}, data_home=tmp_path) == {**get_kind("linear").defaults, "C": 3.0}
    encoder = offline_encoder()
    static = prepare_params("static", {"encoder": encoder}, data_home=tmp_path)
    assert static["encoder"] == encoder and static["cache_dir"] == str(tmp_path / "static")
    hybrid = prepare_params("hybrid", {"encoder": encoder}, data_home=tmp_path)
    assert hybrid["cache_dir"] == str(tmp_path / "embeddings")
    assert prepare_params("static", {"encoder": encoder})["cache_dir"] is None  # no data home: no disk cache
    assert prepare_params("static", static, data_home=tmp_path / "elsewhere") == static  # idempotent
    with pytest.raises(ModelError, match="not-an-encoder"):
        prepare_params("static", {"encoder": str(tmp_path / "not-an-encoder")})


def test_model_json_gets_no_path_of_this_machine(tmp_path):
    encoder = offline_encoder()
    params = prepare_params("static", {"encoder": encoder}, data_home=tmp_path)
    described = describe_params("static", params)
    assert "cache_dir" not in described
    assert described["encoder"] == f"local folder {Path(encoder).resolve().name!r}"
    assert str(tmp_path) not in json.dumps(described) and encoder not in json.dumps(described)
    hub = describe_params("hybrid", {**params, "encoder": "sentence-transformers/all-MiniLM-L6-v2"})
    assert hub["encoder"] == "sentence-transformers/all-MiniLM-L6-v2"
