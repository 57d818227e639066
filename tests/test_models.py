"""Model kinds: the seed reproduction works, and the default model behaves like a genre model."""

from __future__ import annotations

import numpy as np
import pytest

from moviegenre.core.errors import UsageError
from moviegenre.core.examples import EXAMPLE_PLOTS
from moviegenre.core.genres import GENRES
from moviegenre.kinds.registry import build_estimator, kind_names
from moviegenre.kinds.text import seed_tokenize
from moviegenre.model.artifact import load_model, save_model
from moviegenre.model.genre_model import as_probability_record
from moviegenre.training.train import train, tune_thresholds

E1_PLOT, E2_PLOT = EXAMPLE_PLOTS["E1"], EXAMPLE_PLOTS["E2"]

WESTERN = "a lone gunfighter rides into a frontier town where the sheriff and ranchers face an outlaw gang in a showdown at the saloon ."
HORROR = "a group of teenagers in a remote cabin are hunted one by one by a demon that possesses the dead and drinks their blood ."
ANIMATION = "an animated tale of a talking mouse and his cartoon friends who sing their way through a magical kingdom ."
WAR = "soldiers of an infantry platoon fight their way across europe during world war ii after the normandy invasion ."


def p(model, text: str, genre: str) -> float:
    return float(model.predict_proba([text])[0, GENRES.index(genre)])


def test_known_kinds():
    assert {"seed", "linear"} <= set(kind_names())
    with pytest.raises(UsageError, match="unknown model kind 'nope'"):
        build_estimator("nope")
    with pytest.raises(UsageError, match="'linear' takes no option 'colour'"):
        build_estimator("linear", colour="red")


def test_seed_tokenizer_matches_the_original_rules():
    assert seed_tokenize("The brothers can't stop RUNNING, 2 times!") == ["brother", "cant", "stop", "run", "time"]


def test_seed_kind_trains_on_a_sample_and_predicts_24_keys(dev_movies, tmp_path):
    sample = dev_movies.subset(np.arange(250))
    model = train("seed", sample, cv_folds=0)
    save_model(model.pipeline, model.metadata, tmp_path / "seed")
    loaded = load_model(tmp_path / "seed")
    record = as_probability_record(loaded.predict_proba([E1_PLOT])[0])
    assert list(record) == [f"p_{g}" for g in GENRES]
    assert all(0.0 <= v <= 1.0 for v in record.values())
    assert loaded.kind == "seed"


# --- behavioural tests on the small default-kind model -------------------------------------


def test_probabilities_shape_and_range(small_model):
    proba = small_model.predict_proba([E1_PLOT, E2_PLOT, {"plot": WAR, "title": "Platoon"}])
    assert proba.shape == (3, 24)
    assert np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all()


@pytest.mark.parametrize(
    ("plot", "high", "low"),
    [
        (WESTERN, "Western", "Musical"),
        (HORROR, "Horror", "Family"),
        (ANIMATION, "Animation", "War"),
        (WAR, "War", "Animation"),
        (E1_PLOT, "Romance", "Horror"),
        (E2_PLOT, "Drama", "Animation"),
    ],
)
def test_directional_expectations(small_model, plot, high, low):
    assert p(small_model, plot, high) > p(small_model, plot, low)


def test_original_examples_top_genres(small_model):
    top_e2 = GENRES[int(np.argmax(small_model.predict_proba([E2_PLOT])[0]))]
    assert top_e2 == "Drama"
    assert "Romance" in small_model.predict([E1_PLOT])[0]


def test_invariance_to_a_character_name(small_model):
    a = small_model.predict_proba([WESTERN.replace("a lone gunfighter", "john, a lone gunfighter,")])
    b = small_model.predict_proba([WESTERN.replace("a lone gunfighter", "peter, a lone gunfighter,")])
    # Names carry a little signal (they are words in the vocabulary), never a different genre.
    assert np.argmax(a) == np.argmax(b)
    assert np.abs(a - b).max() < 0.15


def test_adding_western_words_raises_western(small_model):
    base = "a man arrives in a small town and meets a woman ."
    assert p(small_model, base + " the cowboys and the sheriff draw their guns .", "Western") > p(small_model, base, "Western")


def test_label_sets_never_empty_and_sorted(small_model):
    proba = small_model.predict_proba([E1_PLOT, "zzzz qqqq"])
    for row, genres in zip(proba, small_model.label_sets(proba), strict=True):
        assert genres, "every movie gets at least one genre"
        values = [row[GENRES.index(g)] for g in genres]
        assert values == sorted(values, reverse=True)


def test_thresholds_maximise_f1_on_a_toy_case():
    labels = np.zeros((6, 24), dtype=int)
    proba = np.zeros((6, 24))
    labels[:3, 0] = 1
    proba[:, 0] = [0.9, 0.8, 0.35, 0.3, 0.1, 0.05]
    thresholds = tune_thresholds(labels, proba)
    assert 0.3 < thresholds["Action"] <= 0.35
    assert thresholds["News"] == 1.0  # no positives: never chosen by threshold


def test_small_model_metadata_has_cv_metrics_and_thresholds(small_model):
    meta = small_model.metadata
    cv = meta["metrics"]["cv"]
    assert cv["cv_folds"] == 2 and 0.7 < cv["macro_auc"] <= 1.0
    assert set(meta["thresholds"]) == set(GENRES)
    assert meta["training_data"]["rows"] == 2000 and len(meta["training_data"]["sha256"]) == 64
