"""The compiled linear model (moviegenre.fast): the pipeline's exact features and probabilities,
a bundle that loads without scikit-learn, and the same checks on load as model.skops."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import zipfile

import joblib
import numpy as np
import pytest
import skops.io
from benchmarks.processes import predict_proba_processes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import E1_PLOT, E2_PLOT, Evil, editing_model_json, flip_a_byte, replace_model_file
from moviegenre.core.data import load_movies
from moviegenre.core.errors import DataError, ModelError
from moviegenre.core.files import sha256_of
from moviegenre.core.items import to_columns as items_to_columns
from moviegenre.core.items import to_frame as items_to_frame
from moviegenre.core.layout import Layout
from moviegenre.fast.bundle import BUNDLE_FILE, BUNDLE_FORMAT, load_bundle, save_bundle
from moviegenre.fast.linear import TfidfText
from moviegenre.kinds.compile import NotCompilable, compile_linear
from moviegenre.kinds.registry import build_estimator
from moviegenre.model.artifact import load_model, save_model
from moviegenre.model.genre_model import GenreModel, PipelineScorer
from moviegenre.training.train import compact_for_storage

TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def testing_frame(testing_zip):
    return load_movies(testing_zip, labelled=False).frame


@pytest.fixture(scope="module")
def pipeline(small_model_dir):
    """The scikit-learn pipeline, read from model.skops (the reference)."""
    return load_model(small_model_dir).pipeline


def fit(estimator, movies):
    # As train() does: one fit at a time (liblinear is not thread-safe; see test_train_concurrency).
    with joblib.parallel_backend("sequential"):
        return estimator.fit(movies.frame, movies.labels)


def columns(frame):
    return list(frame["plot"]), list(frame["title"]), frame["year"].to_numpy()


# --- equal to the pipeline ---------------------------------------------------------------------


def test_features_and_probabilities_equal_the_pipeline_on_the_testing_file(small_model, pipeline, testing_frame):
    fast = small_model.scorer
    assert fast is not None, "a linear model directory is loaded through its compiled form"
    expected_x = pipeline.named_steps["features"].transform(testing_frame).tocsr()
    expected_x.sort_indices()
    x = fast.transform(*columns(testing_frame))
    assert x.shape == expected_x.shape and x.nnz == expected_x.nnz > 0
    assert np.array_equal(x.indptr, expected_x.indptr)
    assert np.array_equal(x.indices, expected_x.indices)
    assert np.array_equal(x.data, expected_x.data), "TF-IDF values must be equal bit for bit"

    expected = pipeline.named_steps["classifier"].predict_proba(expected_x)
    proba = small_model.predict_proba(testing_frame, calibrated=False)  # calibration comes after either
    assert proba.shape == (len(testing_frame), 24)
    assert np.abs(proba - expected).max() <= TOLERANCE


def test_one_plot_at_a_time_equals_the_batch(small_model, testing_frame):
    sample = testing_frame.iloc[:200]
    batch = small_model.predict_proba(sample)
    one_by_one = np.vstack([small_model.predict_proba([row]) for row in sample.to_dict("records")])
    assert np.abs(one_by_one - batch).max() <= TOLERANCE


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plot=st.text(st.characters(codec="utf-8"), min_size=1, max_size=300),
    title=st.text(st.characters(codec="utf-8"), max_size=30),
    year=st.one_of(st.none(), st.integers(1880, 2030)),
)
def test_any_text_gets_the_pipelines_features(small_model, pipeline, plot, title, year):
    """Odd whitespace, accents, digits and symbols: the same tokens and n-grams as scikit-learn."""
    item = {"plot": plot + " x", "title": title, "year": year}
    expected = pipeline.named_steps["features"].transform(items_to_frame([item])).tocsr()
    expected.sort_indices()
    ids, values = small_model.scorer.features_one(item["plot"], title, math.nan if year is None else float(year))
    assert np.array_equal(ids, expected.indices)
    assert np.array_equal(values, expected.data)


@pytest.mark.filterwarnings("ignore:Label not .* is present in all training")
def test_genres_with_a_single_class_in_training_keep_their_constant(dev_movies):
    """On 300 movies some genres have no positive: scikit-learn fits a constant predictor."""
    sample = dev_movies.subset(np.arange(300))
    constant = sample.labels.sum(axis=0) == 0
    assert constant.any()
    fitted = compact_for_storage(fit(build_estimator("linear"), sample))
    fast = compile_linear(fitted)
    expected = fitted.predict_proba(items_to_frame([E1_PLOT, E2_PLOT]))
    proba = fast.predict_proba([E1_PLOT, E2_PLOT])
    assert np.abs(proba - expected).max() <= TOLERANCE
    assert np.all(proba[:, constant] == 0.0)


@pytest.mark.filterwarnings("ignore:Label not .* is present in all training")
def test_other_pipelines_are_not_compiled_and_use_the_pipeline(dev_movies, small_model, caplog):
    sample = dev_movies.subset(np.arange(300))
    custom = build_estimator("linear")
    custom.set_params(features__plot_words__tokenizer=str.split, features__plot_words__token_pattern=None)
    fit(custom, sample)
    with pytest.raises(NotCompilable, match=r"'plot_words' uses unsupported setting\(s\) \['tokenizer'\]"):
        compile_linear(custom)
    model = GenreModel(custom, small_model.metadata)  # a linear model
    with caplog.at_level("WARNING", logger="moviegenre.kinds.registry"):
        assert isinstance(model.scorer, PipelineScorer)  # in memory it scores; saving it is refused
    assert "'linear' model has no fast form" in caplog.text and "unsupported setting" in caplog.text
    assert np.allclose(model.predict_proba([E1_PLOT], calibrated=False), custom.predict_proba(items_to_frame([E1_PLOT])))
    with pytest.raises(NotCompilable, match="not a two-step"):
        compile_linear(build_estimator("seed"))


def test_two_processes_give_the_same_probabilities(small_model, testing_frame):
    sample = testing_frame.iloc[:300]
    expected = small_model.scorer.predict_proba(*columns(sample))
    proba = predict_proba_processes(small_model.scorer, *columns(sample), workers=2, chunk_rows=100)
    assert np.array_equal(proba, expected)


# --- items, as the pipeline path checks them ---------------------------------------------------


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["a plot", "   "], r"item 1: field 'plot' is blank"),
        ([{"title": "no plot"}], r"item 0: field 'plot' is missing"),
        (["a plot", 42], r"item 1: field 'plot' expected a plot string or a record, got int"),
        ([{"plot": "a plot", "title": 7}], r"item 0: field 'title' must be text"),
    ],
)
def test_bad_items_get_the_same_errors_on_both_paths(small_model, items, message):
    for convert in (items_to_columns, items_to_frame, small_model.predict_proba):
        with pytest.raises(DataError, match=message):
            convert(items)


def test_records_with_titles_and_years(small_model, pipeline):
    items = [{"plot": E1_PLOT, "title": "Message in a Bottle", "year": 1999}, {"plot": E2_PLOT, "year": "1978"}, E2_PLOT]
    expected = pipeline.predict_proba(items_to_frame(items))
    assert np.abs(small_model.predict_proba(items, calibrated=False) - expected).max() <= TOLERANCE
    assert small_model.predict_proba([]).shape == (0, 24)


# --- the bundle in the model directory -------------------------------------------------------------


def test_model_json_records_the_bundle_and_the_model_it_was_compiled_from(small_model_dir):
    meta = json.loads((small_model_dir / Layout.CARD).read_text())
    entry = meta["fast_path"]
    assert entry["file"] == BUNDLE_FILE
    assert entry["sha256"] == sha256_of(small_model_dir / BUNDLE_FILE)
    assert entry["model_sha256"] == meta["artifact"]["sha256"]
    assert (entry["format"], entry["form"]) == (BUNDLE_FORMAT, "linear")
    with zipfile.ZipFile(small_model_dir / BUNDLE_FILE) as archive:
        assert all(name.endswith(".npy") for name in archive.namelist())
    with np.load(small_model_dir / BUNDLE_FILE, allow_pickle=False) as bundle:
        config = json.loads(bundle["config"].tobytes())
    assert (config["format"], config["form"]) == (BUNDLE_FORMAT, "linear")


def test_a_bundle_of_an_unknown_form_or_format_is_refused(small_model, tmp_path):
    path = tmp_path / BUNDLE_FILE
    save_bundle(small_model.scorer, path)
    with np.load(path, allow_pickle=False) as bundle:
        arrays = {name: bundle[name] for name in bundle.files}
    config = json.loads(arrays["config"].tobytes())
    for change, message in [({"form": "quantum"}, "form 'quantum'"), ({"format": 1}, "format 1, expected")]:
        np.savez(path, **{**arrays, "config": np.frombuffer(json.dumps({**config, **change}).encode(), np.uint8)})
        with pytest.raises(ModelError, match=message):
            load_bundle(path)


def test_a_fresh_process_scores_without_scikit_learn_skops_or_pandas(small_model_dir):
    code = (
        "import sys, moviegenre\n"
        f"model = moviegenre.load_model({str(small_model_dir)!r})\n"
        "proba = model.predict_proba(['a gunfight in a frontier town'])\n"
        "assert proba.shape == (1, 24)\n"
        "print(sorted(m for m in ('sklearn', 'skops', 'pandas', 'scipy.sparse') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_pipeline_is_loaded_on_first_use(small_model_dir, pipeline):
    model = load_model(small_model_dir)
    assert type(model.pipeline) is type(pipeline)
    assert model.pipeline is model.pipeline


def test_an_altered_or_missing_bundle_is_refused(model_copy):
    path = model_copy / BUNDLE_FILE
    flip_a_byte(path)
    with pytest.raises(ModelError, match=r"fast.npz has been altered or truncated"):
        load_model(model_copy)
    path.unlink()
    with pytest.raises(ModelError, match=r"fast.npz is missing"):
        load_model(model_copy)


def rewrite_fast_path(directory, **changes):
    with editing_model_json(directory) as meta:
        meta["fast_path"].update(changes)


def test_a_bundle_holding_a_pickle_is_refused(model_copy):
    path = model_copy / BUNDLE_FILE
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            if name != "intercept.npy":
                archive.writestr(name, data)
        with archive.open("intercept.npy", "w") as member:
            np.lib.format.write_array(member, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    rewrite_fast_path(model_copy, sha256=sha256_of(path))
    with pytest.raises(ModelError, match="not a readable inference bundle"):
        load_model(model_copy)


def test_a_hostile_model_skops_is_refused_at_load_beside_a_consistent_bundle(model_copy):
    """Consistent checksums everywhere: the bundle (plain arrays) could score, but the model
    file beside it names a type that is not trusted, so nothing is loaded."""
    replace_model_file(model_copy, lambda path: skops.io.dump({"pipeline": Evil()}, path), forge_fast_path=True)
    with pytest.raises(ModelError, match="not on moviegenre's trusted list.*Evil"):
        load_model(model_copy)


def test_a_bundle_from_another_model_skops_is_refused(model_copy):
    """A linear model is only served through its compiled form (its kind must compile)."""
    rewrite_fast_path(model_copy, model_sha256="0" * 64)
    with pytest.raises(ModelError, match=r"fast\.npz does not belong to this model\.skops.*'linear' model is only served"):
        load_model(model_copy)


def test_resaving_a_loaded_model_writes_a_fresh_bundle(small_model, tmp_path):
    meta = save_model(small_model.pipeline, small_model.metadata, tmp_path / "again")
    assert meta["fast_path"]["model_sha256"] == meta["artifact"]["sha256"]
    again = load_model(tmp_path / "again")
    assert np.array_equal(again.predict_proba([E1_PLOT, E2_PLOT]), small_model.predict_proba([E1_PLOT, E2_PLOT]))


def test_bundle_round_trip_keeps_every_array(small_model, tmp_path):
    path = tmp_path / BUNDLE_FILE
    save_bundle(small_model.scorer, path)
    loaded = load_bundle(path)
    assert np.array_equal(loaded.coef, small_model.scorer.coef) and loaded.coef.dtype == np.float32
    assert [b.vectorizer.width for b in loaded.blocks] == [b.vectorizer.width for b in small_model.scorer.blocks]


# --- the word tables: precomputed words, integer n-grams ---------------------------------------


def char_block(fast):
    return next(b.vectorizer for b in fast.blocks if getattr(b.vectorizer, "analyzer", None) == "char_wb")


def test_precomputed_words_have_the_rows_computed_on_the_fly(small_model):
    table = small_model.scorer.word_tables["plot"]
    assert sorted(v.analyzer for v in table.vectorizers) == ["char_wb", "word"]  # one lookup per word for both
    words, stored = table.known()
    assert len(words) > 1000 and {"the", "western", ",", "a"} <= set(words)
    for vectorizer, (lengths, values) in zip(table.vectorizers, stored, strict=True):
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        for k in range(0, len(words), 7):
            assert values[indptr[k] : indptr[k + 1]].tolist() == vectorizer.word_row(words[k])
    char = char_block(small_model.scorer)
    assert char.word_row("western") == char._char_wb_word("western").tolist()


def test_a_bundle_keeps_the_precomputed_words_and_they_change_no_feature(small_model, testing_frame, tmp_path):
    path = tmp_path / BUNDLE_FILE
    save_bundle(small_model.scorer, path)
    loaded = load_bundle(path)
    assert sorted(loaded.word_tables) == ["plot", "title"]
    for column in loaded.word_tables:
        words, stored = loaded.known_words(column)
        expected_words, expected = small_model.scorer.known_words(column)
        assert words == expected_words and sorted(stored) == sorted(expected)
        for i, (lengths, values) in stored.items():
            assert np.array_equal(lengths, expected[i][0]) and np.array_equal(values, expected[i][1])
    bare = load_bundle(path)
    for column in bare.word_tables:
        bare.precompute_words(column, [])  # nothing known: every word computed when met
    sample = testing_frame.iloc[:300]
    for fast in (loaded, bare):
        assert np.array_equal(fast.transform(*columns(sample)).toarray(),
                              small_model.scorer.transform(*columns(sample)).toarray())


def word_block(fast):
    return next(b.vectorizer for b in fast.blocks if getattr(b.vectorizer, "analyzer", None) == "word"
                and b.column == "plot")


def test_a_bundle_keeps_the_word_ngram_index_and_loads_without_the_vocabulary(small_model, tmp_path):
    """The word n-gram index is stored (not rebuilt at load), the same as one built from the
    terms; the term dictionaries are made only when a word the tables do not know is met."""
    path = tmp_path / BUNDLE_FILE
    save_bundle(small_model.scorer, path)
    loaded = load_bundle(path)
    stored, built = word_block(loaded), word_block(small_model.scorer)
    assert stored._extra_tokens == built._extra_tokens and stored._base == built._base
    assert np.array_equal(stored._unigram_columns, built._unigram_columns)
    assert sorted(stored._gram_keys) == sorted(built._gram_keys) == [2]
    for n, (keys, columns) in built._gram_keys.items():
        assert np.array_equal(stored._gram_keys[n][0], keys) and np.array_equal(stored._gram_keys[n][1], columns)
    assert all(b.vectorizer._vocabulary is None for b in loaded.blocks if isinstance(b.vectorizer, TfidfText))
    loaded.features_one(" ".join(loaded.known_words("plot")[0][::50]))  # words the plot table knows
    assert word_block(loaded)._vocabulary is None
    ids, values = loaded.features_one("the zqxjw sheriff")  # a word no table knows
    assert word_block(loaded)._vocabulary is not None and char_block(loaded)._vocabulary is not None
    expected = small_model.scorer.features_one("the zqxjw sheriff")
    assert np.array_equal(ids, expected[0]) and np.array_equal(values, expected[1])


def test_a_damaged_word_ngram_index_is_refused(small_model, tmp_path):
    path = tmp_path / BUNDLE_FILE
    save_bundle(small_model.scorer, path)
    with np.load(path, allow_pickle=False) as bundle:
        arrays = {name: bundle[name] for name in bundle.files}
    i = next(i for i, b in enumerate(small_model.scorer.blocks) if b.vectorizer is word_block(small_model.scorer))
    arrays[f"grams_{i}_keys_2"] = arrays[f"grams_{i}_keys_2"][::-1].copy()
    np.savez(path, **arrays)
    with pytest.raises(ModelError, match="not a readable inference bundle.*2-gram keys out of order"):
        load_bundle(path)


def test_threads_scoring_new_words_at_once_get_the_same_features(small_model_dir, small_model, testing_frame):
    """A server's worker threads share the word tables: appending new words' rows from several
    threads at once must neither mix rows up nor lose them."""
    from concurrent.futures import ThreadPoolExecutor

    fast = load_bundle(small_model_dir / BUNDLE_FILE)
    plots = [f"{plot} zq{i}x qz{i % 7}y" for i, plot in enumerate(testing_frame["plot"][:400])]
    expected = [small_model.scorer.features_one(plot) for plot in plots]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(fast.features_one, plots))
    for (ids, values), (want_ids, want_values) in zip(got, expected, strict=True):
        assert np.array_equal(ids, want_ids) and np.array_equal(values, want_values)


def test_words_met_past_the_cache_size_are_forgotten_not_mixed_up(small_model, small_model_dir, testing_frame,
                                                                 monkeypatch):
    monkeypatch.setattr("moviegenre.fast.words.WORD_CACHE_SIZE", 40)
    fast = load_bundle(small_model_dir / BUNDLE_FILE)
    table = fast.word_tables["plot"]
    plots = list(testing_frame["plot"][:60])
    expected = [small_model.scorer.features_one(plot) for plot in plots]
    for _ in range(2):
        for plot, (ids, values) in zip(plots, expected, strict=True):
            got_ids, got_values = fast.features_one(plot)
            assert np.array_equal(got_ids, ids) and np.array_equal(got_values, values)
            met = table.vectorizers[0]._rows.n - len(table.known()[0])
            assert met <= max(40, len(set(plot.lower().split())))
            assert all(v._rows.n == table.vectorizers[0]._rows.n for v in table.vectorizers)


def test_word_ngrams_found_by_integer_keys_are_the_string_ngrams():
    """Unigrams, bigrams and trigrams, a word found only inside n-grams ("wild"), stop words
    (left out before n-grams are made) and unknown tokens (which end an n-gram)."""
    terms = ["cat", "dog", "big", "cat dog", "dog cat", "big cat dog", "wild dog", "cat cat", "dog big cat"]
    vectorizer = TfidfText(analyzer="word", terms=terms, idf=np.linspace(1.0, 2.0, len(terms)), ngram_range=(1, 3),
                           stop_words=["a", "the"], sublinear_tf=True)
    assert vectorizer.table is not None and "wild" not in vectorizer.vocabulary
    texts = ["a big cat dog, cat-cat dog  wild dog a wild the dog Big  Cat", "wild dog", "wild zebra dog",
             "dog a big the cat", "zebra", "the a", "cat", "dog\tbig\ncat cat"]
    for text in texts:
        ids, values = vectorizer.features(text)
        expected_ids, expected_values = vectorizer._tfidf(*vectorizer._word_counts(text.lower()))
        assert np.array_equal(ids, expected_ids) and np.array_equal(values, expected_values), text
    # cat, dog, big, "cat dog" and "big cat dog" ("a" is a stop word; "big cat" is no term)
    assert vectorizer.features("a big cat dog")[0].tolist() == [0, 1, 2, 3, 5]
    # a token pattern whose tokens may span whitespace keeps the string n-grams
    assert TfidfText(analyzer="word", terms=terms, idf=None, ngram_range=(1, 3), token_pattern=r"[^,]+").table is None


NEW_WORDS = ["zqxj", "a", "ab", "x" * 40, "!!", "...", "-", "café", "naïve", "日本語", "🎬🎬", "a\x00b", "\x00",
             "qwertyuiopasdfghjk", "frontiersmanship's", "x-ray,", "Zebra-Crossing", "\x7fdel", "ÉTÉ", "q"]


def test_new_words_of_every_kind_get_the_pipelines_features(small_model_dir, pipeline):
    """Words met for the first time, alone or several in a text (found together), ASCII or not:
    the same n-grams and tokens as scikit-learn."""
    fast = load_bundle(small_model_dir / BUNDLE_FILE)
    texts = [" ".join(NEW_WORDS), *NEW_WORDS, " ".join(reversed(NEW_WORDS)) + " the western",
             "zqxjj ab abc abcd 日本 ok", "ok " * 3 + "yy zz"]
    for text in texts:
        item = {"plot": text + " x", "title": text}  # a plot needs a letter
        expected = pipeline.named_steps["features"].transform(items_to_frame([item])).tocsr()
        expected.sort_indices()
        ids, values = fast.features_one(item["plot"], text)
        assert np.array_equal(ids, expected.indices), text
        assert np.array_equal(values, expected.data), text


def test_char_ngrams_of_new_words_in_any_range_are_scikit_learns():
    """Any n-gram range (a word shorter than the shortest n-gram counted once, as scikit-learn
    counts it), terms with a NUL or non-ASCII, and terms not in sorted order; each word alone
    and all of them in one text (met together: their rows are appended at once)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    corpus = [" ".join(NEW_WORDS), "the cat sat on a mat", "a\x00 b\x00c ab\x00 é ée", "to be or not to be"]
    words = [*NEW_WORDS, "cat", "mat", "sat", "on", "b\x00c", "ab\x00", "é", "ée", "be", "to", "not", "zzz"]
    for ngram_range in [(3, 5), (4, 6), (1, 3), (2, 8)]:
        fitted = TfidfVectorizer(analyzer="char_wb", ngram_range=ngram_range).fit(corpus)
        terms = fitted.get_feature_names_out().tolist()
        order = np.random.default_rng(0).permutation(len(terms))
        for permutation in (np.arange(len(terms)), order):
            vectorizer = TfidfText(analyzer="char_wb", terms=[terms[i] for i in permutation],
                                   idf=fitted.idf_[permutation], ngram_range=ngram_range)
            for text in [" ".join(words), *words, " ".join(reversed(words))]:
                expected = fitted.transform([text]).tocsr()[:, permutation]
                expected.sort_indices()
                ids, values = vectorizer.features(text)
                assert np.array_equal(ids, expected.indices), (ngram_range, text)
                # (the L2 norm sums the squares in column order: a permuted vocabulary, other bits)
                np.testing.assert_allclose(values, expected.data, rtol=1e-12 if permutation is order else 0, atol=0)
