"""The static kind: a table distilled from the offline encoder with model2vec, its encoding, the
compiled model in fast.npz, and explanations of it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tests.support.needs import need_module
from typer.testing import CliRunner

from conftest import dev_sample, offline_encoder
from moviegenre.cli import app
from moviegenre.core.errors import ModelError
from moviegenre.core.files import sha256_of
from moviegenre.fast.bundle import BUNDLE_FILE, load_bundle
from moviegenre.fast.static import FastStatic, StaticTable
from moviegenre.kinds import static_embedder
from moviegenre.kinds.static_embedder import StaticEmbedder
from moviegenre.model.artifact import load_model, save_model
from moviegenre.model.explain import explain_items
from moviegenre.training.train import train

os.environ["HF_HUB_OFFLINE"] = "1"
model2vec = need_module("model2vec")
ENCODER = offline_encoder()

#: Keep only the encoder's tokens that start with a, b, c or "[" (the special tokens): a table of
#: about 6,000 rows distills in seconds, and other words exercise unknown-token handling.
SMALL_VOCABULARY = r"(?![a-c\[])"
SAMPLE_SIZE = 200

TEXTS = [
    "a sheriff and a gunslinger face a gang of outlaws in a frontier town .",
    "Astronauts discover an ALIEN signal beneath the ice; the crew cannot agree!",
    "",
    "   ",
    "zzz qqq ☃ 💥",  # nothing but unknown tokens
    "cowboys and cattle " * 400,  # longer than 512 tokens: truncated
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "data-home" / "static"


@pytest.fixture(scope="module")
def params(cache_dir):
    return {"encoder": ENCODER, "cache_dir": str(cache_dir), "folds": 2, "token_remove_pattern": SMALL_VOCABULARY}


@pytest.fixture(scope="module")
def sample(dev_movies):
    return dev_sample(dev_movies, SAMPLE_SIZE)


@pytest.fixture(scope="module")
def trained(sample, params):
    return train("static", sample, cv_folds=2, params=params)


@pytest.fixture(scope="module")
def model_dir(trained, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("models") / "static"
    save_model(trained.pipeline, trained.metadata, directory)
    return directory


@pytest.fixture(scope="module")
def embedder(trained) -> StaticEmbedder:
    return trained.pipeline.embedder_


# --- the table and its encoding ---------------------------------------------------------------


@pytest.mark.parametrize("max_length", [512, 8, None])
def test_encoding_equals_model2vec(embedder, max_length):
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    reference = StaticModel(vectors=embedder.embeddings_.astype(np.float32),
                            tokenizer=Tokenizer.from_str(embedder.tokenizer_), normalize=True, max_length=max_length)
    table = StaticTable(embedder.embeddings_, embedder.tokenizer_, max_length=max_length)
    ours = table.encode(TEXTS)
    assert ours.shape == (len(TEXTS), embedder.n_features_out_) == reference.encode(TEXTS).shape
    np.testing.assert_allclose(ours, reference.encode(TEXTS), rtol=0, atol=1e-6)
    assert not ours[2:5].any()  # no known token: a zero vector, as model2vec gives
    assert np.linalg.norm(ours[0]) == pytest.approx(1.0)


#: Texts that a word-by-word reading could get wrong: special tokens' texts, non-ASCII, control
#: characters Python splits at but the normaliser deletes, punctuation runs, long and cut texts.
HOSTILE = ["[UNK] a bank", "cattle[PAD]ranch", "[pad] [unk] [CLS]", "b\x0bc", "a\x1cb\x1dc", "\x00bandit",
           "caf\u00e9 \u00e9clair", "ALL CAPS Bandits", "tab\tand\nnew\rline", "Mr.. Brown's \"cattle\" (1999) $5!",
           "!!" * 400, "a" * 150, "cowboys " * 600, "b" * 5000, "", "   ", "\u3000ideographic\u2003space"]


def test_word_by_word_tokens_equal_the_tokenizers(embedder, dev_movies):
    """Each text's tokens read word by word (from the word table) are the tokenizer's for the
    whole text: the real plots and titles, and hostile text (which goes to the tokenizer)."""
    from moviegenre.fast.static import embedding_text

    frame = dev_movies.frame.iloc[:400]
    texts = [embedding_text([title, plot]) for title, plot in zip(frame["title"], frame["plot"], strict=True)]
    texts += HOSTILE + TEXTS
    for max_length in (512, 8):
        table = StaticTable(embedder.embeddings_, embedder.tokenizer_, max_length=max_length)
        assert table.lowercase and table.known()[0] == []  # nothing known before precompute
        table.precompute(table.vocabulary_words() + ["cattle", "Bandits"])
        tokenizer = table._tokenizer
        expected = [[i for i in encoding.ids if i != table._unk_id]
                    for encoding in tokenizer.encode_batch([text[: table._max_chars] for text in texts],
                                                           add_special_tokens=False)]
        for round_ in range(2):  # words met the first time, then from the table
            got = table.token_ids(texts)
            assert [ids.tolist() for ids in got] == expected, round_
        word_by_word = [table._word_ids(text[: table._max_chars]) is not None for text in texts]
        assert sum(word_by_word[:400]) > 350 and not any(word_by_word[400:407])  # the hostile ones: whole


def test_rows_are_averaged_as_the_float16_table_is(embedder):
    table = StaticTable(embedder.embeddings_, embedder.tokenizer_)
    ids = table.token_ids(["a bandit and a cattle baron clash in a bank", "cattle"])
    for text_ids in ids * 2:  # rows converted the first time, then reused
        expected = embedder.embeddings_[text_ids.tolist()].mean(axis=0, dtype=np.float64)
        expected /= np.sqrt(expected @ expected) + 1e-32
        np.testing.assert_array_equal(table.embed_ids(text_ids), expected)


def test_embedder_encodes_title_then_plot(embedder):
    import pandas as pd

    frame = pd.DataFrame({"plot": [" a bank robbery ", "cattle"], "title": ["Blue Bandits", np.nan],
                          "year": [1990.0, np.nan]})
    expected = embedder.table().encode(["Blue Bandits. a bank robbery", "cattle"])
    np.testing.assert_array_equal(embedder.transform(frame), expected)


def test_the_table_is_distilled_once_and_cached(embedder, params, cache_dir, sample, monkeypatch):
    def refuse(*args):
        raise AssertionError("distilled again")

    monkeypatch.setattr(static_embedder, "_distill", refuse)
    again = StaticEmbedder(encoder=ENCODER, cache_dir=str(cache_dir), token_remove_pattern=SMALL_VOCABULARY)
    again.fit(sample.frame)
    np.testing.assert_array_equal(again.embeddings_, embedder.embeddings_)
    assert again.tokenizer_ == embedder.tokenizer_
    cached = [path.name for path in cache_dir.iterdir()]
    assert len(cached) == 1 and sorted(p.name for p in (cache_dir / cached[0]).iterdir()) == [
        "embeddings.npy", "settings.json", "tokenizer.json"]
    with pytest.raises(AssertionError, match="distilled again"):  # other settings: another table
        StaticEmbedder(encoder=ENCODER, cache_dir=str(cache_dir), token_remove_pattern=SMALL_VOCABULARY,
                       pca_dims=32).fit(sample.frame)


def test_an_encoder_that_is_not_there_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not-an-encoder"):
        StaticEmbedder(encoder=str(tmp_path / "not-an-encoder"), cache_dir=str(tmp_path)).fit(["a plot"])


# --- the model directory --------------------------------------------------------------------


def test_saved_model_scores_through_its_compiled_form(trained, model_dir, sample):
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["kind"] == "static" and meta["fast_path"]["form"] == "static"
    loaded = load_model(model_dir)
    assert isinstance(loaded.scorer, FastStatic)
    frame = sample.frame.iloc[:40]
    expected = trained.calibration.apply(trained.pipeline.predict_proba(frame))
    np.testing.assert_allclose(loaded.predict_proba(frame), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(loaded.predict_proba([frame.iloc[0].to_dict()]), expected[:1], rtol=0, atol=1e-9)
    # the pipeline read back from model.skops (types checked) gives the same answers
    np.testing.assert_allclose(loaded.pipeline.predict_proba(frame), trained.pipeline.predict_proba(frame),
                               rtol=0, atol=1e-12)


def test_the_table_is_stored_once_in_fast_npz(trained, model_dir, sample):
    """model.skops leaves the table out; the pipeline read back from it gets the table from
    fast.npz, and predicts as the compiled form does."""
    import skops.io

    with zipfile.ZipFile(model_dir / "model.skops") as archive:
        schema = archive.read("schema.json").decode()
    assert "embeddings_" not in schema and "tokenizer_" not in schema
    in_memory = trained.pipeline.embedder_
    assert in_memory.embeddings_.nbytes > 1_000_000  # the model in memory keeps its table...
    assert len(skops.io.dumps(in_memory)) < 20_000  # ...and its serialised embedder leaves it out
    loaded = load_model(model_dir)
    embedder = loaded.pipeline.embedder_
    np.testing.assert_array_equal(embedder.embeddings_, trained.pipeline.embedder_.embeddings_)
    assert embedder.tokenizer_ == trained.pipeline.embedder_.tokenizer_
    frame = sample.frame.iloc[:20]
    np.testing.assert_allclose(loaded.pipeline.predict_proba(frame),
                               loaded.predict_proba(frame, calibrated=False), rtol=0, atol=1e-9)


def test_the_bundle_stores_the_tables_words(model_dir, embedder):
    """The compiled table knows the tokens of its vocabulary's words and the linear part's
    words before it meets them, read from fast.npz as they were computed."""
    table = load_bundle(model_dir / BUNDLE_FILE).table
    words, (lengths, values) = table.known()
    assert {"cattle", "bank"} <= set(words) and len(words) > 5_000
    fresh = StaticTable(embedder.embeddings_, embedder.tokenizer_)
    fresh.precompute(words)
    assert fresh.known()[0] == words
    np.testing.assert_array_equal(fresh.known()[1][0], lengths)
    np.testing.assert_array_equal(fresh.known()[1][1], values)


def test_an_embedder_read_without_its_model_directory_says_how_to_load_it(model_dir):
    import skops.io

    from moviegenre.model.trust import trusted_types

    path = model_dir / "model.skops"
    pipeline = skops.io.load(path, trusted=sorted(set(skops.io.get_untrusted_types(file=path)) & trusted_types()))
    with pytest.raises(ModelError, match="load its model with moviegenre.load_model"):
        pipeline.embedder_.transform(["a plot"])


def test_predicting_imports_neither_torch_nor_scikit_learn(model_dir):
    script = (
        "import json, sys\n"
        "from moviegenre.model.artifact import load_model\n"
        f"model = load_model({str(model_dir)!r})\n"
        "model.predict_proba([{'plot': 'a sheriff rides out of town', 'title': 'Dodge', 'year': 1950}])\n"
        "model.predict_proba(['a plot', 'another plot'])\n"
        "heavy = ('torch', 'transformers', 'model2vec', 'sentence_transformers', 'sklearn', 'skops', 'pandas')\n"
        "print(json.dumps([name for name in heavy if name in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def damage(directory: Path, **replace: np.ndarray) -> None:
    """Rewrite fast.npz with some arrays replaced, and record its new sha256 in model.json (so
    that only the bundle's own checks can refuse it)."""
    path = directory / BUNDLE_FILE
    with np.load(path, allow_pickle=False) as bundle:
        arrays = {name: bundle[name] for name in bundle.files}
    np.savez(path, **{**arrays, **replace})
    meta = json.loads((directory / "model.json").read_text())
    meta["fast_path"]["sha256"] = sha256_of(path)
    (directory / "model.json").write_text(json.dumps(meta))


def test_an_altered_bundle_is_refused(model_dir, tmp_path):
    copy = Path(shutil.copytree(model_dir, tmp_path / "model"))
    data = bytearray((copy / BUNDLE_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / BUNDLE_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"fast\.npz has been altered or truncated"):
        load_model(copy)


def test_a_table_that_does_not_fit_its_tokenizer_is_refused(model_dir, tmp_path):
    copy = Path(shutil.copytree(model_dir, tmp_path / "model"))
    table = load_bundle(model_dir / BUNDLE_FILE).table.embeddings
    damage(copy, static_embeddings=table[:-1])
    with pytest.raises(ModelError, match=r"not a readable inference bundle.*tokenizer of \d+ tokens"):
        load_model(copy)


def test_an_unreadable_tokenizer_is_refused(model_dir, tmp_path):
    copy = Path(shutil.copytree(model_dir, tmp_path / "model"))
    damage(copy, static_tokenizer=np.frombuffer(b'{"version": "1.0", "model": ', dtype=np.uint8))
    with pytest.raises(ModelError, match="static tokenizer is unreadable"):
        load_model(copy)


# --- explanations ---------------------------------------------------------------------------


def test_explanation_parts_add_up_to_the_score(model_dir):
    from scipy.special import logit

    loaded = load_model(model_dir)
    plot = "A lone gunfighter rides into a frontier town to avenge his brother, killed by outlaws."
    explanation = explain_items(loaded, [{"plot": plot, "title": "Dead Man's Trail", "year": 1956}], top_genres=3)[0]
    uncalibrated = loaded.predict_proba([{"plot": plot, "title": "Dead Man's Trail", "year": 1956}],
                                        calibrated=False)[0]
    assert len(explanation) == 3
    for entry in explanation:
        parts = entry["intercept"] + sum(t["weight"] for t in entry["terms"]) + entry["other_terms"]
        assert entry["embedding"] is not None and entry["embedding"] != 0
        assert parts + entry["embedding"] == pytest.approx(entry["score"], abs=1e-9)
        g = loaded.genres.index(entry["genre"])
        assert entry["score"] == pytest.approx(logit(uncalibrated[g]), abs=1e-9)
        assert {t["field"] for t in entry["terms"]} <= {"plot", "title", "year"}


def test_cli_explains_a_static_model(model_dir):
    result = CliRunner().invoke(app, ["explain", "--model", str(model_dir), "--json", "--title", "Dodge",
                                      "a sheriff and a gunslinger face a gang of outlaws"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["model"]["kind"] == "static"
    assert all(entry["embedding"] is not None for entry in body["explanation"])


@pytest.mark.long
def test_static_reaches_the_target_on_held_out_movies(dev_movies):
    """The issue's bar for the default kind: macro ROC AUC >= 0.910 on the dev file's fixed 20%
    held out, with the full distilled table (minutes on two cores; opt-in with -m long)."""
    from sklearn.model_selection import train_test_split

    from moviegenre.training.evaluate import roc_metrics

    seen, unseen = train_test_split(np.arange(len(dev_movies)), test_size=0.2, random_state=0)
    model = train("static", dev_movies.subset(seen), cv_folds=0)
    held_out = dev_movies.subset(unseen)
    assert roc_metrics(held_out.labels, model.predict_proba(held_out.frame))["macro_auc"] >= 0.910
