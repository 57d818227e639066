"""The model card (model.json): typed and bounded, read in one place; a malformed one is a
ModelError naming the file and the field, never a bare ValueError or RecursionError. Also the
format version, the compiled form a kind must have, and the one walker over the estimator graph."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from conftest import editing_model_json
from moviegenre.cli import app
from moviegenre.core.errors import ModelError
from moviegenre.core.files import sha256_of
from moviegenre.core.layout import Layout
from moviegenre.kinds.graph import estimators
from moviegenre.model.artifact import load_model, save_model
from moviegenre.model.card import FORMAT_VERSION, ModelCard, read_card


def refused(directory, field: str) -> ModelError:
    """The ModelError loading ``directory`` raises, after checking it names the file and ``field``."""
    with pytest.raises(ModelError) as caught:
        load_model(directory)
    message = str(caught.value)
    assert str(directory / Layout.CARD) in message, message
    assert f"'{field}'" in message, message
    assert "\n" not in message
    return caught.value


def write_raw(directory, text: str) -> None:
    (directory / Layout.CARD).write_text(text)


def test_the_card_is_written_and_read_back_unchanged(small_model_dir, small_model):
    card = read_card(small_model_dir)
    assert card.format_version == FORMAT_VERSION == 4
    assert card.to_json() == json.loads((small_model_dir / Layout.CARD).read_text())
    assert small_model.card == card and small_model.metadata == card.to_json()
    assert small_model.id == card.id and small_model.kind == card.kind == "linear"


def test_layout_names_the_files():
    layout = Layout("models/x")
    assert (layout.model.name, layout.card.name, layout.fast.name, layout.encoder.name) == (
        "model.skops", "model.json", "fast.npz", "encoder")  # fmt: skip
    assert Layout.RESERVED == {"model.skops", "model.json", "fast.npz"}


# --- malformed model.json ------------------------------------------------------------------------


def test_a_huge_integer_names_its_field(model_copy):
    text = (model_copy / Layout.CARD).read_text()
    card = json.loads(text)
    rows = card["training_data"]["rows"]
    write_raw(model_copy, text.replace(f'"rows": {rows}', '"rows": ' + "9" * 5_000))
    error = refused(model_copy, "training_data.rows")
    assert "5,000 digits" in str(error)


def test_a_large_integer_beyond_the_bounds_names_its_field(model_copy):
    with editing_model_json(model_copy) as meta:
        meta["artifact"]["bytes"] = 10**25
    refused(model_copy, "artifact.bytes")


def test_a_huge_integer_inside_free_form_fields_is_refused(model_copy):
    text = (model_copy / Layout.CARD).read_text()
    write_raw(model_copy, text.replace('"metrics": {', '"metrics": {"huge": ' + "1" * 10_000 + ", ", 1))
    refused(model_copy, "metrics")


def test_deep_nesting_names_its_field(model_copy):
    card = json.loads((model_copy / Layout.CARD).read_text())
    card["params"] = "PLACEHOLDER"
    text = json.dumps(card).replace('"PLACEHOLDER"', "[" * 100_000 + "]" * 100_000)
    write_raw(model_copy, text)
    error = refused(model_copy, "params")
    assert "nested" in str(error)


def test_moderate_nesting_names_its_field(model_copy):
    with editing_model_json(model_copy) as meta:
        value: object = 1
        for _ in range(200):
            value = [value]
        meta["metrics"]["deep"] = value
    with pytest.raises(ModelError, match="metrics"):
        load_model(model_copy)


@pytest.mark.parametrize("thresholds", ["0.5", [0.5] * 24, {"Action": "0.5"}, {"Action": 2.0}, {"Cooking": 0.5}])
def test_malformed_thresholds_name_the_field(model_copy, thresholds):
    with editing_model_json(model_copy) as meta:
        meta["thresholds"] = thresholds
    refused(model_copy, "thresholds.Action" if isinstance(thresholds, dict) and "Action" in thresholds else "thresholds")


WRONG_TYPES = {
    "format_version": "2",
    "id": 5,
    "kind": ["linear"],
    "description": 1.5,
    "created_at": {"at": 1},
    "title": 7,
    "labels": "Action",
    "labels_from": ["tags"],
    "thresholds": "0.5",
    "threshold_objective": 3,
    "calibration": "platt",
    "params": ["C"],
    "training_data": "data.csv",
    "training_seconds": "12.5",
    "metrics": [1, 2],
    "versions": "1.5",
    "artifact": "model.skops",
    "fast_path": 1,
    "files": {"file": "x"},
}


def test_every_top_level_field_is_covered():
    assert set(WRONG_TYPES) == set(ModelCard.model_fields)


@pytest.mark.parametrize(("field", "value"), list(WRONG_TYPES.items()), ids=list(WRONG_TYPES))
def test_a_wrong_type_in_a_top_level_field_names_it(model_copy, field, value):
    with editing_model_json(model_copy) as meta:
        meta[field] = value
    refused(model_copy, field)


def test_an_unknown_field_is_refused(model_copy):
    with editing_model_json(model_copy) as meta:
        meta["surprise"] = 1
    refused(model_copy, "surprise")


def test_non_finite_numbers_are_refused(model_copy):
    text = (model_copy / Layout.CARD).read_text()
    card = json.loads(text)
    write_raw(model_copy, text.replace(f'"training_seconds": {card["training_seconds"]}', '"training_seconds": NaN'))
    refused(model_copy, "training_seconds")


def _with_rows(text: str, value: str) -> str:
    rows = json.loads(text)["training_data"]["rows"]
    return text.replace(f'"rows": {rows}', f'"rows": {value}')


#: name -> (model.json's text -> a malformed one, what the error line names)
MALFORMED_CARDS = {
    "thresholds-a-list": (lambda text: json.dumps({**json.loads(text), "thresholds": [0.5]}), "'thresholds'"),
    "thresholds-a-string": (lambda text: json.dumps({**json.loads(text), "thresholds": "0.5"}), "'thresholds'"),
    "huge-integer": (lambda text: _with_rows(text, "9" * 5_000), "training_data.rows"),
    "deep-nesting": (lambda text: _with_rows(text, "[" * 100_000 + "]" * 100_000), "training_data"),
    "not-json": (lambda text: "{not json", "not valid JSON"),
    "not-utf8": (lambda text: "{\udcff: 1}", "not valid JSON"),
}


@pytest.mark.parametrize("case", list(MALFORMED_CARDS))
def test_the_cli_prints_one_error_line_for_a_malformed_card(model_copy, case):
    malform, named = MALFORMED_CARDS[case]
    text = malform((model_copy / Layout.CARD).read_text())
    (model_copy / Layout.CARD).write_bytes(text.encode("utf-8", "surrogateescape"))
    result = CliRunner().invoke(app, ["predict", "--model", str(model_copy), "a gunfight in a frontier town"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and named in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert str(model_copy) in result.stderr
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)


# --- the format -----------------------------------------------------------------------------------


def test_a_directory_of_another_format_says_how_to_retrain(model_copy):
    with editing_model_json(model_copy) as meta:
        meta["format_version"] = 1
    with pytest.raises(ModelError) as caught:
        load_model(model_copy)
    message = str(caught.value)
    assert "format_version 1" in message and f"format_version {FORMAT_VERSION}" in message
    assert f"moviegenre train --kind linear --out {model_copy}" in message
    assert "\n" not in message


# --- a kind that must compile --------------------------------------------------------------------


def test_a_must_compile_kind_without_its_fast_form_is_refused(model_copy):
    (model_copy / Layout.FAST).unlink()
    with editing_model_json(model_copy) as meta:
        del meta["fast_path"]  # the card is consistent: only the compiled form is missing
    with pytest.raises(ModelError, match=r"has no fast\.npz.*'linear' model is only served through its compiled form"):
        load_model(model_copy)


def test_a_must_compile_kind_with_a_foreign_fast_form_is_refused(model_copy):
    with editing_model_json(model_copy) as meta:
        meta["fast_path"]["model_sha256"] = "0" * 64
    with pytest.raises(ModelError, match=r"fast\.npz does not belong to this model\.skops"):
        load_model(model_copy)


def test_a_must_compile_kind_that_cannot_compile_is_not_saved(small_model, tmp_path):
    from sklearn.dummy import DummyClassifier
    from sklearn.multiclass import OneVsRestClassifier

    stand_in = OneVsRestClassifier(DummyClassifier())  # no fast form for a "linear" card
    with pytest.raises(ModelError, match="must compile"):
        save_model(stand_in, small_model.card, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_save_model_takes_the_dict_form_too(small_model, tmp_path):
    written = save_model(small_model.pipeline, small_model.metadata, tmp_path / "again")
    assert written == json.loads((tmp_path / "again" / Layout.CARD).read_text())
    assert written["fast_path"]["model_sha256"] == written["artifact"]["sha256"]
    assert written["fast_path"]["sha256"] == sha256_of(tmp_path / "again" / Layout.FAST)
    assert load_model(tmp_path / "again").card.id == small_model.id
    shutil.rmtree(tmp_path / "again")


# --- the walker -----------------------------------------------------------------------------------


def test_the_walker_visits_each_estimator_once(small_model):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, Pipeline

    shared = TfidfVectorizer()
    union = FeatureUnion([("a", shared), ("b", shared)])
    pipeline = Pipeline([("features", union), ("again", union)])
    pipeline.extra_ = {"nested": [(shared, pipeline)]}  # a cycle back to the top
    found = list(estimators(pipeline))
    assert [type(part).__name__ for part in found] == ["Pipeline", "FeatureUnion", "TfidfVectorizer"]
    assert len({id(part) for part in found}) == len(found)

    parts = list(estimators(small_model.pipeline))
    assert len({id(part) for part in parts}) == len(parts) > 3
    assert parts[0] is small_model.pipeline
    assert any(type(part).__name__ == "TfidfVectorizer" for part in parts)
