"""Explanations: the terms behind each top genre, words of the request's own text, adding up
exactly to the model's own score, read from the compiled form (for the linear and static kinds)
and equal to the scikit-learn pipeline's own scores."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from tests.support.needs import need_module
from typer.testing import CliRunner

from conftest import E1_PLOT, E2_PLOT, dev_sample, offline_encoder
from moviegenre.cli import app
from moviegenre.core.errors import UsageError
from moviegenre.core.genres import GENRES, PROBABILITY_KEYS
from moviegenre.core.items import to_frame
from moviegenre.fast.explain import LinearExplainer
from moviegenre.kinds.compile import compile_linear
from moviegenre.model.artifact import load_model, save_model
from moviegenre.model.explain import (
    EXPLAIN_TERMS,
    NotExplainable,
    explain_items,
    explainable_kinds,
    format_explanation,
)
from moviegenre.model.genre_model import GenreModel, PipelineScorer

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WESTERN_PLOT = (
    "a lone gunslinger rides into a frontier town terrorised by a gang of cattle rustlers ; "
    "the sheriff is dead and the ranchers ask him to stand with them at the final gunfight ."
)
#: Capitals, punctuation, a word pair split by a stop word ("killed his brother"), digits.
MIXED_ITEM = {
    "plot": "The Outlaw gang KILLED his brother, so Jake (a lone gunfighter) rides into Tombstone, 1881.",
    "title": "The Outlaw Josey Wales",
    "year": 1976,
}
ENTRY_KEYS = ["genre", "probability", "score", "intercept", "terms", "other_terms", "embedding"]


def parts_of(entry: dict) -> float:
    return entry["intercept"] + sum(t["weight"] for t in entry["terms"]) + entry["other_terms"] + (
        entry["embedding"] or 0.0
    )


def assert_terms_come_from(entry: dict, item: dict) -> None:
    for term in entry["terms"]:
        assert set(term) == {"term", "field", "weight"}
        if term["field"] == "year":
            assert term["term"] == str(item["year"])
        else:
            assert term["field"] in ("plot", "title")
            assert term["term"] and not re.search(r"\s", term["term"]), term  # one word, never a pair
            assert term["term"] in item[term["field"]], term


def explain(model: GenreModel, item: dict | str, **options) -> list[dict]:
    """One item's explanation, through :func:`explain_items` as every caller gets it."""
    return explain_items(model, [item], **options)[0]


def check_explanation(model: GenreModel, item: dict, scores: np.ndarray, top_terms: int) -> list[dict]:
    """Explain all 24 genres of ``item``; every entry's parts add up to the model's own logit
    (``scores``), its probability is ``predict_proba``'s and every term is in the item's text."""
    explanation = explain(model, item, top_genres=24, top_terms=top_terms)
    json.dumps(explanation)  # the API returns it as is
    proba = model.predict_proba([item])[0]
    assert sorted(e["genre"] for e in explanation) == sorted(GENRES)
    for entry in explanation:
        g = model.genres.index(entry["genre"])
        assert list(entry) == ENTRY_KEYS
        assert parts_of(entry) == pytest.approx(entry["score"], abs=1e-9)
        assert entry["score"] == pytest.approx(scores[g], abs=1e-9)
        assert entry["probability"] == proba[g]
        assert len(entry["terms"]) <= top_terms
        weights = [abs(t["weight"]) for t in entry["terms"]]
        assert weights == sorted(weights, reverse=True)
        assert_terms_come_from(entry, item)
    return explanation


@pytest.mark.parametrize("top_terms", [0, 3, EXPLAIN_TERMS, 10_000])
@pytest.mark.parametrize("item", [{"plot": E1_PLOT}, MIXED_ITEM], ids=["E1", "mixed"])
def test_linear_contributions_add_up_to_the_pipelines_score(small_model, item, top_terms):
    """Both paths equal: the compiled form's parts add up to the scikit-learn pipeline's logit."""
    scores = small_model.pipeline.decision_function(to_frame([item]))[0]
    explanation = check_explanation(small_model, item, scores, top_terms)
    assert all(entry["embedding"] is None for entry in explanation)


def test_every_word_of_the_text_is_a_term_as_it_appears(small_model):
    explanation = explain(small_model, MIXED_ITEM, top_genres=1, top_terms=10_000)
    terms = {(t["field"], t["term"]) for t in explanation[0]["terms"]}
    # as written, not lower-cased; bigrams such as "killed brother" shared out to their words
    assert {("plot", "Outlaw"), ("plot", "KILLED"), ("plot", "brother"), ("plot", "Tombstone")} <= terms
    assert ("title", "Outlaw") in terms and ("year", "1976") in terms
    assert not {"outlaw", "killed", "killed brother"} & {term for _, term in terms}


TINY_PLOTS = ["they killed his brother", "a brother and a sister", "killed in action", "his sister sings"]


def tiny_labels() -> np.ndarray:
    """Each genre on for one of the tiny plots, so that every genre has a linear classifier."""
    labels = np.zeros((len(TINY_PLOTS), len(GENRES)), dtype=int)
    labels[np.arange(len(GENRES)) % len(TINY_PLOTS), np.arange(len(GENRES))] = 1
    return labels


def tiny_pipeline(vectorizer: TfidfVectorizer) -> Pipeline:
    """``vectorizer`` on the plot, then one logistic regression per genre: a pipeline that
    compiles to a FastLinear."""
    return Pipeline([
        ("features", ColumnTransformer([("plot", vectorizer, "plot")])),
        ("classifier", OneVsRestClassifier(LogisticRegression())),
    ]).fit(to_frame(TINY_PLOTS), tiny_labels())


def test_a_word_pair_is_shared_out_to_its_two_words():
    """Word pairs only, as raw counts: each word of "killed brother" gets half of the pair's
    contribution, its coefficient."""
    pipeline = tiny_pipeline(TfidfVectorizer(ngram_range=(2, 2), stop_words="english", use_idf=False, norm=None))
    parts = LinearExplainer(compile_linear(pipeline)).explain_one("They KILLED his brother")
    pair = list(pipeline[0].get_feature_names_out()).index("plot__killed brother")
    coef = np.vstack([e.coef_ for e in pipeline[-1].estimators_])[:, pair]
    assert parts.terms == [("plot", "KILLED"), ("plot", "brother")]
    np.testing.assert_allclose(parts.weights, np.column_stack([coef / 2, coef / 2]), rtol=1e-12)
    np.testing.assert_allclose(parts.other, 0, atol=1e-12)
    np.testing.assert_allclose(parts.scores, pipeline.decision_function(to_frame(["They KILLED his brother"]))[0],
                               atol=1e-12)


def test_a_token_the_text_does_not_hold_as_a_word_goes_to_other_terms():
    """Tokens that are not the text's words (a token pattern that keeps three letters, like a
    stemmer): their weight stays in other_terms, and the parts still add up."""
    pipeline = tiny_pipeline(TfidfVectorizer(token_pattern=r"(?u)\b\w\w\w"))
    plot = "They killed his brother"
    parts = LinearExplainer(compile_linear(pipeline)).explain_one(plot)
    assert parts.terms == [("plot", "his")]  # "the", "kil" and "bro" are not words of the plot
    assert np.abs(parts.other).max() > 0
    expected = pipeline.decision_function(to_frame([plot]))[0]
    np.testing.assert_allclose(parts.intercept + parts.weights.sum(axis=1) + parts.other, expected, atol=1e-12)


def test_genres_come_most_probable_first(small_model):
    explanation = explain(small_model, E2_PLOT)
    probabilities = [entry["probability"] for entry in explanation]
    assert len(explanation) == 3 and probabilities == sorted(probabilities, reverse=True)
    assert probabilities == sorted(small_model.predict_proba([E2_PLOT])[0], reverse=True)[:3]
    assert all(len(entry["terms"]) == EXPLAIN_TERMS for entry in explanation)


def test_many_items_at_once_match_one_at_a_time(small_model):
    items = [{"plot": E1_PLOT}, MIXED_ITEM, {"plot": E2_PLOT, "title": "Midnight Express"}]
    together = explain_items(small_model, items, top_genres=2, top_terms=4)
    alone = [explain(small_model, item, top_genres=2, top_terms=4) for item in items]
    assert same_explanations(together, alone)
    frame = to_frame(items)
    assert explain_items(small_model, frame, top_genres=2, top_terms=4) == together
    assert explain_items(small_model, iter(items), top_genres=2, top_terms=4) == together


def same_explanations(first, second) -> bool:
    """Equal but for the last bits of floats (a batch is scored as a matrix, one row alike)."""
    if isinstance(first, float) and isinstance(second, float):
        return first == pytest.approx(second, rel=1e-12, abs=1e-12)
    if isinstance(first, dict) and isinstance(second, dict):
        return list(first) == list(second) and all(same_explanations(first[k], second[k]) for k in first)
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(map(same_explanations, first, second))
    return first == second


def test_western_words_push_western_up(small_model):
    (entry,) = explain(small_model, WESTERN_PLOT, top_genres=1, top_terms=10)
    assert entry["genre"] == "Western"
    up = " ".join(t["term"] for t in entry["terms"] if t["weight"] > 0)
    assert any(stem in up for stem in ("gunsl", "frontier", "sheriff", "ranch", "cattle", "rustl"))


def test_a_linear_model_without_a_compiled_form_is_refused():
    pipeline = tiny_pipeline(TfidfVectorizer())
    model = GenreModel(pipeline, {"id": "slow", "kind": "linear"}, scorer=PipelineScorer(pipeline))
    with pytest.raises(NotExplainable, match="model kind 'linear' cannot be explained: .* not by a compiled form"):
        explain(model, E2_PLOT)


@pytest.fixture(scope="module")
def seed_model_dir(dev_movies, tmp_path_factory):
    from moviegenre.training.train import train

    model = train("seed", dev_movies.subset(np.arange(40)), cv_folds=0)
    directory = tmp_path_factory.mktemp("models") / "seed"
    save_model(model.pipeline, model.metadata, directory)
    return directory


def test_the_seed_kind_cannot_be_explained(seed_model_dir):
    assert {"linear", "static", "hybrid"} <= set(explainable_kinds()) and "seed" not in explainable_kinds()
    with pytest.raises(NotExplainable, match="model kind 'seed' cannot be explained") as refused:
        explain(load_model(seed_model_dir), E2_PLOT)
    assert all(f"{name}" in str(refused.value) for name in explainable_kinds())  # the kinds that can
    result = CliRunner().invoke(app, ["predict", "--model", str(seed_model_dir), "--explain", E2_PLOT])
    assert result.exit_code == 2
    assert "error: model kind 'seed' cannot be explained" in result.output


@pytest.mark.parametrize(("top_genres", "top_terms", "message"), [
    (0, 10, "top_genres must be at least 1, not 0"),
    (3, -1, "top_terms must be at least 0"),
])
def test_bad_arguments_are_refused(small_model, top_genres, top_terms, message):
    with pytest.raises(UsageError, match=message):
        explain(small_model, E2_PLOT, top_genres=top_genres, top_terms=top_terms)


def test_asking_for_more_genres_than_the_model_has_explains_them_all(small_model):
    assert len(explain(small_model, E2_PLOT, top_genres=25)) == len(GENRES)


# --- the compiled form, from disk ------------------------------------------------------------

#: Words, pairs, capitals, punctuation, whitespace runs, non-ASCII, a fractional and a missing year,
#: a plot with no known feature.
ITEMS = [
    {"plot": E1_PLOT},
    {"plot": E2_PLOT, "title": "Midnight Express", "year": 1978},
    MIXED_ITEM,
    {"plot": "A gunfight in a frontier town.\n\tThe SHERIFF   rides out; cattle-rustlers flee!", "title": "Dodge",
     "year": 1880.5},
    {"plot": "İstanbul nights, über alles", "title": "", "year": None},
    {"plot": "Zoë and the naïve café owner — über-cool, 1920s jazz; x y z", "title": "Café Society", "year": 2190},
    {"plot": "qqqq"},
]


@pytest.fixture(scope="module")
def linear_pair(dev_movies, tmp_path_factory) -> tuple[GenreModel, GenreModel]:
    """A linear model as trained (in memory) and as loaded from its directory."""
    from moviegenre.training.train import train

    trained = train("linear", dev_sample(dev_movies, 300), cv_folds=0)
    directory = tmp_path_factory.mktemp("models") / "linear"
    save_model(trained.pipeline, trained.metadata, directory)
    return trained, load_model(directory)


@pytest.fixture(scope="module")
def static_pair(dev_movies, tmp_path_factory) -> tuple[GenreModel, GenreModel]:
    """A static model (a small table, as test_static distills it) as trained and as loaded."""
    need_module("model2vec")
    from moviegenre.training.train import train

    cache = tmp_path_factory.getbasetemp() / "data-home" / "static"  # shared with test_static
    params = {"encoder": offline_encoder(), "cache_dir": str(cache), "folds": 2,
              "token_remove_pattern": r"(?![a-c\[])"}
    trained = train("static", dev_sample(dev_movies, 200), cv_folds=0, params=params)
    directory = tmp_path_factory.mktemp("models") / "static"
    save_model(trained.pipeline, trained.metadata, directory)
    return trained, load_model(directory)


@pytest.fixture(params=["linear", "static"])
def pair(request) -> tuple[GenreModel, GenreModel]:
    return request.getfixturevalue(f"{request.param}_pair")


def test_the_explanation_from_disk_equals_the_trained_models(pair):
    trained, loaded = pair
    assert explain_items(loaded, ITEMS, top_genres=24, top_terms=10_000) == explain_items(
        trained, ITEMS, top_genres=24, top_terms=10_000)


def test_the_compiled_explanation_adds_up_to_the_pipelines_own_score(pair):
    """Both paths equal: the explanation read from the compiled form, and the scikit-learn
    pipeline's decision_function (for static, the HybridClassifier's, its blend included)."""
    trained, loaded = pair
    expected = trained.pipeline.decision_function(to_frame(ITEMS))
    for item, scores in zip(ITEMS, expected, strict=True):
        explanation = check_explanation(loaded, item, scores, top_terms=10)
        assert all((entry["embedding"] is None) == (loaded.kind == "linear") for entry in explanation)


def test_a_static_explanation_folds_the_blend_in(static_pair):
    trained, loaded = static_pair
    hybrid = trained.pipeline
    frame = to_frame([MIXED_ITEM])
    text_intercept = LinearExplainer(compile_linear(hybrid.text_model_)).intercept
    embedding_scores = hybrid.base_scores(frame)[0, :, 1]
    for entry in explain(loaded, MIXED_ITEM, top_genres=24):
        g = loaded.genres.index(entry["genre"])
        (w_text, w_embedding), bias = hybrid.blend_coef_[g], hybrid.blend_intercept_[g]
        assert entry["intercept"] == pytest.approx(w_text * text_intercept[g] + bias, abs=1e-12)
        assert entry["embedding"] == pytest.approx(w_embedding * embedding_scores[g], abs=1e-9)


NO_SCIKIT_LEARN = """
import importlib.abc, json, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("sklearn", "skops", "pandas", "torch"):
            raise ImportError(f"explaining imported {name}")

sys.meta_path.insert(0, Refuse())
from moviegenre.model.artifact import load_model
from moviegenre.model.explain import explain_items

model = load_model(sys.argv[1])
items = json.loads(sys.argv[2])
print(json.dumps(explain_items(model, items, top_genres=24, top_terms=10_000)))
"""


def test_explaining_from_disk_needs_neither_scikit_learn_nor_model_skops(pair):
    """In a fresh process that refuses to import scikit-learn, skops, pandas and torch: a loaded
    linear or static model explains, without reading model.skops, and as in this process."""
    trained, loaded = pair
    result = subprocess.run([sys.executable, "-c", NO_SCIKIT_LEARN, str(loaded.directory), json.dumps(ITEMS)],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(json.dumps(explain_items(loaded, ITEMS, top_genres=24,
                                                                            top_terms=10_000)))


def test_a_loaded_model_explains_without_loading_its_pipeline(small_model_dir):
    def refuse():
        raise AssertionError("explaining deserialised model.skops")

    loaded = load_model(small_model_dir)
    lazy = GenreModel(None, loaded.metadata, small_model_dir, scorer=loaded.scorer, load_pipeline=refuse)
    assert explain(lazy, MIXED_ITEM) == explain(loaded, MIXED_ITEM)


# --- the command line --------------------------------------------------------------------------


def test_cli_explain_prints_text_and_json(small_model_dir, small_model):
    runner = CliRunner()
    text = runner.invoke(app, ["explain", "--model", str(small_model_dir), WESTERN_PLOT,
                               "--top-genres", "2", "--top-terms", "4"])
    assert text.exit_code == 0, text.output
    assert "Western: probability" in text.output and "up:" in text.output
    as_json = runner.invoke(app, ["explain", "--model", str(small_model_dir), E1_PLOT, "--title", "Message in a Bottle",
                                  "--json"])
    assert as_json.exit_code == 0, as_json.output
    payload = json.loads(as_json.output)
    assert payload["model"] == {"id": small_model.id, "kind": "linear"}
    assert payload["explanation"] == explain(small_model, {"plot": E1_PLOT, "title": "Message in a Bottle"})


def test_cli_explain_text_is_built_from_the_explanation(small_model):
    explanation = explain(small_model, MIXED_ITEM, top_genres=2, top_terms=30)
    text = format_explanation({"id": "m", "kind": "linear"}, explanation)
    assert text.startswith("model m (linear)")
    for entry in explanation:
        assert f"{entry['genre']}: probability {entry['probability']:.3f}" in text
        assert f"other terms {entry['other_terms']:+.3f}" in text
    assert "1976 (year)" in text and "(title)" in text


def test_cli_predict_explains_with_the_same_structure(small_model_dir, small_model):
    result = CliRunner().invoke(app, ["predict", "--model", str(small_model_dir), "--explain", "--explain-top", "2",
                                      E2_PLOT])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert list(payload) == [*PROBABILITY_KEYS, "genres", "explanation"]
    assert payload["explanation"] == explain(small_model, E2_PLOT, top_genres=2)
    plain = json.loads(CliRunner().invoke(app, ["predict", "--model", str(small_model_dir), E2_PLOT]).stdout)
    assert list(plain) == [*PROBABILITY_KEYS, "genres"]


@pytest.mark.parametrize("top", ["0", "1001"])
def test_cli_explain_top_is_bounded(small_model_dir, top):
    result = CliRunner().invoke(app, ["predict", "--model", str(small_model_dir), "--explain", "--explain-top", top,
                                      E2_PLOT])
    assert result.exit_code == 2 and "--explain-top" in result.output


def test_cli_explain_reports_a_missing_model(tmp_path):
    result = CliRunner().invoke(app, ["explain", "--model", str(tmp_path / "nope"), E1_PLOT])
    assert result.exit_code == 2
    assert "does not exist" in result.output


# --- hybrid --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hybrid_model(dev_movies, tmp_path_factory):
    from moviegenre.training.train import train

    # the sample and cache test_hybrid uses, so no plot is encoded twice
    cache = tmp_path_factory.getbasetemp() / "data-home" / "embeddings"
    return train("hybrid", dev_sample(dev_movies, 200), cv_folds=0, params={
        "encoder": offline_encoder(), "cache_dir": str(cache), "folds": 3})


@pytest.mark.parametrize("item", [{"plot": E1_PLOT}, MIXED_ITEM], ids=["E1", "mixed"])
def test_hybrid_explanation_adds_up_to_the_final_score(hybrid_model, item):
    hybrid = hybrid_model.pipeline
    frame = to_frame([item])
    explanation = check_explanation(hybrid_model, item, hybrid.decision_function(frame)[0], top_terms=5)
    text_intercept = LinearExplainer(compile_linear(hybrid.text_model_)).intercept
    embedding_scores = hybrid.base_scores(frame)[0, :, 1]
    for entry in explanation:
        g = hybrid_model.genres.index(entry["genre"])
        (w_text, w_embedding), bias = hybrid.blend_coef_[g], hybrid.blend_intercept_[g]
        assert entry["intercept"] == pytest.approx(w_text * text_intercept[g] + bias, abs=1e-12)
        assert entry["embedding"] == pytest.approx(w_embedding * embedding_scores[g], abs=1e-12)
    assert "embedding" in format_explanation({"id": hybrid_model.id, "kind": "hybrid"}, explanation)
