"""Labels of one's own (issue 20): reading them in every shape, training every kind but seed on
them, the model's card, the command line, and the escaping of ``p_<label>`` keys.

The example catalogue (``examples/own-labels/catalogue.csv``, 700 real movies, 11 coarse labels
with spaces, accents and ``&``) is in the repository, so these tests need no downloaded data.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import REPO, offline_encoder
from moviegenre.cli import app
from moviegenre.core.data import LabelSpec, load_movies
from moviegenre.core.errors import DataError, UsageError
from moviegenre.core.genres import GENRES, PROBABILITY_KEYS
from moviegenre.core.labels import label_key, label_of_key, probability_keys
from moviegenre.model.artifact import load_model, save_model
from moviegenre.training.train import train

CATALOGUE = REPO / "examples" / "own-labels" / "catalogue.csv"
#: The catalogue's labels, in its columns' order.
LABELS = [
    "Action & Adventure", "Comedy", "Drama", "Crime & Mystery", "Thriller", "Horror", "Romance",
    "Ciencia ficción & Fantasía", "Family & Animation", "True stories", "Music & Dance",
]  # fmt: skip
SCI_FI = "Ciencia ficción & Fantasía"
SPACE_PLOT = "a young wizard battles an evil sorcerer with magic spells and a dragon ."


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return pd.read_csv(CATALOGUE, index_col=0, dtype=str, keep_default_na=False)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path)
    return path


def _by_label(movies) -> dict[str, np.ndarray]:
    return {name: movies.labels[:, i] for i, name in enumerate(movies.label_names)}


# --- the escaping rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Sci-Fi", "p_Sci-Fi"),
        (SCI_FI, f"p_{SCI_FI}"),
        ("Kids / Family", "p_Kids / Family"),
        ("Crime, Mystery", "p_Crime%2C Mystery"),
        ('The "best"', "p_The %22best%22"),
        ("100%", "p_100%25"),
        ("two\nlines", "p_two%0Alines"),
        ("zero\u200bwidth", "p_zero%E2%80%8Bwidth"),
        ("アニメ", "p_アニメ"),
    ],
)
def test_a_label_key_escapes_only_what_a_csv_header_cannot_hold(name, key):
    assert label_key(name) == key
    assert label_of_key(key) == name


def test_the_24_genres_keep_the_original_keys():
    assert probability_keys(GENRES) == PROBABILITY_KEYS
    assert [label_key(genre) for genre in GENRES] == list(PROBABILITY_KEYS)


def test_distinct_labels_get_distinct_keys():
    names = ["a,b", "a%2Cb", "a%b", "a%25b", "a\"b", "a%22b", "a b", "a\tb", "a%09b"]
    assert len({label_key(name) for name in names}) == len(names)


# --- the shapes of labelled data ----------------------------------------------------------------


def test_every_shape_gives_the_same_labels(raw, tmp_path):
    lists = raw["tags"].str.split("|")
    shapes = {
        "separated": (raw, LabelSpec(column="tags", sep="|")),
        "json": (raw.assign(tags=[json.dumps(names, ensure_ascii=False) for names in lists]), LabelSpec(column="tags")),
        "python": (raw.assign(tags=[str(names) for names in lists]), LabelSpec(column="tags")),
        "prefix": (raw, LabelSpec(prefix="tag_")),
        "columns": (raw.rename(columns=lambda c: c.removeprefix("tag_")), LabelSpec(columns=tuple(LABELS))),
    }
    expected = None
    for name, (frame, spec) in shapes.items():
        movies = load_movies(_write(frame, tmp_path / f"{name}.csv"), labelled=True, labels=spec)
        assert sorted(movies.label_names) == sorted(LABELS), name
        found = _by_label(movies)
        expected = expected or found
        assert all(np.array_equal(found[label], expected[label]) for label in LABELS), name
    # the 0/1 columns keep their order; a list column's labels are alphabetical
    assert list(load_movies(CATALOGUE, labelled=True, labels=LabelSpec(prefix="tag_")).label_names) == LABELS
    separated = load_movies(CATALOGUE, labelled=True, labels=LabelSpec(column="tags", sep="|")).label_names
    assert list(separated) == sorted(LABELS, key=str.casefold)


def test_zip_and_parquet_files_hold_labels_too(raw, tmp_path):
    archive = tmp_path / "catalogue.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(CATALOGUE, "catalogue.csv")
    parquet = tmp_path / "catalogue.parquet"
    raw.to_parquet(parquet)
    reference = load_movies(CATALOGUE, labelled=True, labels=LabelSpec(prefix="tag_"))
    for path in (archive, parquet):
        movies = load_movies(path, labelled=True, labels=LabelSpec(prefix="tag_"))
        assert movies.label_names == reference.label_names and np.array_equal(movies.labels, reference.labels)


def test_columns_that_do_not_match_are_shown(tmp_path):
    with pytest.raises(DataError) as caught:
        load_movies(CATALOGUE, labelled=True, labels=LabelSpec(prefix="label_"))
    message = str(caught.value)
    assert "no column whose name starts with 'label_'" in message and "'tag_Comedy'" in message
    with pytest.raises(DataError, match=r"lacks label column\(s\) \['tag_Western'\]"):
        load_movies(CATALOGUE, labelled=True, labels=LabelSpec(columns=("tag_Comedy", "tag_Western")))
    with pytest.raises(DataError, match=r"lacks required column\(s\) \['labels'\]"):
        load_movies(CATALOGUE, labelled=True, labels=LabelSpec(column="labels"))


def test_bad_label_values_name_the_row_and_the_field(raw, tmp_path):
    flags = raw.copy()
    flags.iloc[2, flags.columns.get_loc("tag_Comedy")] = "yes"
    with pytest.raises(DataError) as caught:
        load_movies(_write(flags, tmp_path / "flags.csv"), labelled=True, labels=LabelSpec(prefix="tag_"))
    assert "field 'tag_Comedy' must hold 0 or 1, not ['yes']" in str(caught.value)
    assert f"data row 3 (ID {raw.index[2]})" in str(caught.value)

    lists = raw.assign(tags=[json.dumps(names.split("|")) for names in raw["tags"]])
    lists.iloc[4, lists.columns.get_loc("tags")] = "[Drama, Comedy]"
    with pytest.raises(DataError) as caught:
        load_movies(_write(lists, tmp_path / "lists.csv"), labelled=True, labels=LabelSpec(column="tags"))
    assert "field 'tags' could not be read: not a JSON or Python list of quoted names in data row 5" in str(caught.value)

    long = raw.assign(tags=raw["tags"].where(np.arange(len(raw)) != 6, "x" * 101))
    with pytest.raises(DataError, match=r"has 101 characters; the most is 100 in data row 7"):
        load_movies(_write(long, tmp_path / "long.csv"), labelled=True, labels=LabelSpec(column="tags", sep="|"))


def test_labels_of_any_script_are_tidied_to_one_form(raw, tmp_path):
    decomposed = "Ciencia ficcio\u0301n & Fantasi\u0301a"  # the same text, accents as combining marks
    frame = raw.assign(tags=raw["tags"].str.replace(SCI_FI, f"  {decomposed} "))
    movies = load_movies(_write(frame, tmp_path / "nfd.csv"), labelled=True, labels=LabelSpec(column="tags", sep="|"))
    assert SCI_FI in movies.label_names and len(movies.label_names) == len(LABELS)


def test_label_options_take_one_shape_only():
    with pytest.raises(UsageError, match="one shape"):
        LabelSpec(column="tags", prefix="tag_")
    with pytest.raises(UsageError, match="--label-sep must not be empty"):
        LabelSpec(sep="")


# --- training ---------------------------------------------------------------------------------


def _flags(raw: pd.DataFrame, labels: dict[str, np.ndarray]) -> pd.DataFrame:
    columns = pd.DataFrame({f"tag_{name}": column.astype(int) for name, column in labels.items()}, index=raw.index)
    return pd.concat([raw[["year", "title", "plot"]], columns], axis=1)


def test_a_label_with_too_few_movies_is_refused_naming_it_and_its_count(raw, tmp_path):
    rows = len(raw)
    rare = np.zeros(rows, dtype=int)
    rare[[0, 1]] = 1
    nearly_all = np.ones(rows, dtype=int)
    nearly_all[5] = 0
    path = _write(_flags(raw, {"Drama": raw["tag_Drama"].to_numpy(int), "Rare one": rare, "Everything": nearly_all}),
                  tmp_path / "rare.csv")
    runner = CliRunner()
    refused = runner.invoke(app, ["train", "--kind", "linear", "--data", str(path), "--label-prefix", "tag_",
                                  "--out", str(tmp_path / "m")])
    assert refused.exit_code == 2, refused.output
    assert "'Rare one' 2" in refused.stderr and "'Everything' 1" in refused.stderr and "--min-positives" in refused.stderr
    assert "Drama" not in refused.stderr.split("too few movies")[1]  # only the labels at fault are named
    assert not (tmp_path / "m").exists()
    trained = runner.invoke(app, ["train", "--kind", "linear", "--data", str(path), "--label-prefix", "tag_",
                                  "--min-positives", "1", "--out", str(tmp_path / "m")])
    assert trained.exit_code == 0, trained.output
    card = json.loads((tmp_path / "m" / "model.json").read_text())
    assert card["labels"] == [{"name": "Drama", "positives": int(raw["tag_Drama"].astype(int).sum())},
                              {"name": "Rare one", "positives": 2}, {"name": "Everything", "positives": rows - 1}]


def test_a_model_has_2_to_1000_labels(raw, tmp_path):
    one = _write(_flags(raw, {"Drama": raw["tag_Drama"].to_numpy(int)}), tmp_path / "one.csv")
    with pytest.raises(DataError, match="a model has 2 to 1,000 labels; the file has 1"):
        train("linear", load_movies(one, labelled=True, labels=LabelSpec(prefix="tag_")), cv_folds=0)
    many = {f"label {i}": (np.arange(len(raw)) % 7 == i % 7).astype(int) for i in range(1001)}
    path = _write(_flags(raw, many), tmp_path / "many.csv")
    with pytest.raises(DataError, match="a model has 2 to 1,000 labels; the file has 1,001"):
        train("linear", load_movies(path, labelled=True, labels=LabelSpec(prefix="tag_")), cv_folds=0)


def test_the_seed_kind_keeps_to_the_24_genres():
    movies = load_movies(CATALOGUE, labelled=True, labels=LabelSpec(prefix="tag_"))
    with pytest.raises(UsageError, match="the seed kind knows only the course's 24 genres"):
        train("seed", movies, cv_folds=0)


@pytest.fixture(scope="module")
def own_dir(tmp_path_factory) -> Path:
    """A linear model of the catalogue's labels, trained by the command line with a title."""
    directory = tmp_path_factory.mktemp("own") / "linear"
    result = CliRunner().invoke(app, [
        "train", "--kind", "linear", "--data", str(CATALOGUE), "--label-prefix", "tag_", "--cv", "2",
        "--title", "Catálogo  de prueba", "--out", str(directory),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    return directory


def test_the_card_records_the_labels_their_positives_the_shape_and_the_title(own_dir, raw):
    card = json.loads((own_dir / "model.json").read_text(encoding="utf-8"))
    assert card["labels"] == [{"name": name, "positives": int(raw[f"tag_{name}"].astype(int).sum())} for name in LABELS]
    assert card["labels_from"] == {"prefix": "tag_"} and card["title"] == "Catálogo de prueba"
    assert list(card["thresholds"]) == LABELS and list(card["calibration"]["labels"]) == LABELS
    assert list(card["metrics"]["cv"]["per_genre"]) == LABELS
    model = load_model(own_dir)
    assert model.labels == tuple(LABELS) and model.title == "Catálogo de prueba"
    assert model.probability_keys == tuple(f"p_{name}" for name in LABELS)
    assert model.predict_proba([SPACE_PLOT]).shape == (1, len(LABELS))


def test_the_command_line_follows_the_models_labels(own_dir):
    runner = CliRunner()
    predicted = runner.invoke(app, ["predict", "--model", str(own_dir), SPACE_PLOT])
    assert predicted.exit_code == 0, predicted.output
    payload = json.loads(predicted.stdout)
    assert list(payload)[:-1] == [f"p_{name}" for name in LABELS] and set(payload["genres"]) <= set(LABELS)
    ranked = sorted(LABELS, key=lambda name: -payload[f"p_{name}"])
    assert SCI_FI in ranked[:3]

    explained = runner.invoke(app, ["explain", "--model", str(own_dir), "--json", "--top-genres", "50", SPACE_PLOT])
    assert explained.exit_code == 0, explained.output
    explanation = json.loads(explained.stdout)["explanation"]
    assert [entry["genre"] for entry in explanation] == ranked  # every label, most probable first
    for entry in explanation:
        assert entry["probability"] == pytest.approx(payload[f"p_{entry['genre']}"])
    sci_fi = next(entry for entry in explanation if entry["genre"] == SCI_FI)
    assert {"wizard", "sorcerer", "magic", "dragon"} & {term["term"] for term in sci_fi["terms"] if term["weight"] > 0}

    evaluated = runner.invoke(app, ["evaluate", "--model", str(own_dir), "--data", str(CATALOGUE), "--json"])
    assert evaluated.exit_code == 0, evaluated.output  # read as the training file was: --label-prefix tag_
    assert list(json.loads(evaluated.stdout)["per_genre"]) == LABELS
    as_lists = runner.invoke(app, ["evaluate", "--model", str(own_dir), "--data", str(CATALOGUE), "--json",
                                   "--label-column", "tags", "--label-sep", "|"])
    assert as_lists.exit_code == 0, as_lists.output
    assert json.loads(as_lists.stdout)["macro_auc"] == json.loads(evaluated.stdout)["macro_auc"]


def test_evaluating_on_labels_the_model_lacks_is_refused(own_dir, raw, tmp_path):
    extra = raw.assign(tags=raw["tags"].where(np.arange(len(raw)) != 3, "Drama|Western"))
    path = _write(extra, tmp_path / "extra.csv")
    result = CliRunner().invoke(app, ["evaluate", "--model", str(own_dir), "--data", str(path),
                                      "--label-column", "tags", "--label-sep", "|"])
    assert result.exit_code == 2
    assert "label(s) ['Western'] that the model does not have, in data row 4" in result.stderr
    course = CliRunner().invoke(app, ["evaluate", "--model", str(own_dir), "--data", str(path), "--label-column",
                                      "genres"])
    assert course.exit_code == 2 and "lacks required column(s) ['genres']" in course.stderr


def test_a_new_label_set_is_a_new_model(tmp_path):
    movies = load_movies(CATALOGUE, labelled=True, labels=LabelSpec(prefix="tag_"))
    first = train("linear", movies, cv_folds=0)
    fewer = movies.subset(np.arange(len(movies)))
    fewer = type(fewer)(fewer.frame, fewer.source, fewer.sha256, fewer.labels[:, :5], fewer.label_names[:5],
                        fewer.label_spec)
    second = train("linear", fewer, cv_folds=0)
    assert first.id != second.id and second.labels == tuple(LABELS[:5])


def test_a_card_whose_labels_do_not_fit_its_model_is_refused(own_dir, tmp_path):
    import shutil

    from moviegenre.core.errors import ModelError

    copy = tmp_path / "copy"
    shutil.copytree(own_dir, copy)
    card = json.loads((copy / "model.json").read_text())
    dropped = card["labels"].pop()["name"]
    card["thresholds"].pop(dropped)
    card["calibration"]["labels"].pop(dropped)
    (copy / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="gives 11 probabilities per movie but model.json names 10 labels"):
        load_model(copy)


def test_the_default_model_has_the_24_genres_with_their_positives(small_model, dev_movies):
    card = small_model.metadata
    assert [entry["name"] for entry in card["labels"]] == list(GENRES)
    assert "labels_from" not in card and "title" not in card
    assert small_model.probability_keys == PROBABILITY_KEYS
    assert sum(entry["positives"] for entry in card["labels"]) <= int(dev_movies.labels.sum())


# --- the other kinds -------------------------------------------------------------------------


def test_the_static_kind_learns_own_labels(tmp_path):
    encoder = offline_encoder()
    movies = load_movies(CATALOGUE, labelled=True, labels=LabelSpec(column="tags", sep="|"))
    params = {"encoder": encoder, "cache_dir": str(tmp_path / "cache"), "folds": 2,
              "token_remove_pattern": r"(?![a-c\[])"}  # a small vocabulary: a quick distillation
    model = train("static", movies, cv_folds=2, params=params, title="Static catalogue")
    directory = tmp_path / "static"
    save_model(model.pipeline, model.card, directory)
    loaded = load_model(directory)
    assert loaded.labels == tuple(sorted(LABELS, key=str.casefold)) and loaded.title == "Static catalogue"
    proba = loaded.predict_proba([SPACE_PLOT, "a comedy about a wedding"])
    assert proba.shape == (2, len(LABELS)) and np.allclose(proba, model.predict_proba([SPACE_PLOT,
                                                                                       "a comedy about a wedding"]))
    assert model.card.metrics["cv"]["macro_auc"] > 0.6


def test_the_hybrid_kind_learns_own_labels_and_explains_them(tmp_path):
    encoder = offline_encoder()
    movies = load_movies(CATALOGUE, labelled=True, labels=LabelSpec(prefix="tag_")).sample(300)
    model = train("hybrid", movies, cv_folds=2, params={"encoder": encoder, "cache_dir": str(tmp_path / "cache"),
                                                       "folds": 2})
    directory = tmp_path / "hybrid"
    save_model(model.pipeline, model.card, directory)
    loaded = load_model(directory)
    assert loaded.labels == tuple(LABELS) and loaded.probability_keys[7] == f"p_{SCI_FI}"
    proba = loaded.predict_proba([SPACE_PLOT])
    assert proba.shape == (1, len(LABELS)) and np.allclose(proba, model.predict_proba([SPACE_PLOT]))
    from moviegenre.model.explain import explain_items

    (explanation,) = explain_items(loaded, [SPACE_PLOT], top_genres=2)
    assert [entry["genre"] for entry in explanation] == [LABELS[i] for i in np.argsort(-proba[0], kind="stable")[:2]]
