"""The HTTP API follows the model's labels (issue 20): ``/inference`` keys, ``/v1/predict``
probabilities, ``/v1/model``, explanations and the Lambda handler, for a model of its own
labels, some of which need escaping in a ``p_<label>`` key; and the 24-genre default answers
exactly as the original did."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from test_api_lambda import body_of, event, load_handler

from conftest import E1_PLOT, E2_PLOT
from moviegenre.api.app import create_app
from moviegenre.core.data import LabelSpec, load_movies
from moviegenre.core.genres import GENRES, PROBABILITY_KEYS
from moviegenre.core.labels import MAX_LABELS
from moviegenre.core.settings import Settings
from moviegenre.model.artifact import load_model, save_model
from moviegenre.training.train import train

CATALOGUE = Path(__file__).resolve().parents[2] / "examples" / "own-labels" / "catalogue.csv"
TITLE = "Catálogo de prueba"
#: Labels of the example catalogue renamed to names a ``p_<label>`` key must escape.
RENAMED = {"Crime & Mystery": "Crime, Mystery", "True stories": '100% "true" <i>stories</i>'}
#: The original system's 24 keys, in its order, written out: what the default answers under.
ORIGINAL_KEYS = [
    "p_Action", "p_Adventure", "p_Animation", "p_Biography", "p_Comedy", "p_Crime", "p_Documentary",
    "p_Drama", "p_Family", "p_Fantasy", "p_Film-Noir", "p_History", "p_Horror", "p_Music", "p_Musical",
    "p_Mystery", "p_News", "p_Romance", "p_Sci-Fi", "p_Short", "p_Sport", "p_Thriller", "p_War",
    "p_Western",
]  # fmt: skip


def own_label_model_dir(directory: Path) -> Path:
    """A linear model of the example catalogue's 11 labels, two renamed (:data:`RENAMED`), with
    a title; saved in ``directory``."""
    frame = pd.read_csv(CATALOGUE, dtype=str, keep_default_na=False)
    frame = frame.rename(columns={f"tag_{old}": f"tag_{new}" for old, new in RENAMED.items()})
    data = directory / "catalogue.csv"
    frame.to_csv(data, index=False)
    movies = load_movies(data, labelled=True, labels=LabelSpec(prefix="tag_"))
    model = train("linear", movies, cv_folds=0, title=TITLE)
    save_model(model.pipeline, model.card, directory / "model")
    return directory / "model"


@pytest.fixture(scope="module")
def own_model_dir(tmp_path_factory) -> Path:
    return own_label_model_dir(tmp_path_factory.mktemp("own-labels"))


@pytest.fixture(scope="module")
def own_model(own_model_dir):
    return load_model(own_model_dir)


@pytest.fixture(scope="module")
def own_client(own_model_dir):
    with TestClient(create_app(settings=Settings(model=own_model_dir, api_key=None))) as client:
        yield client


@pytest.fixture(scope="module")
def default_client(small_model_dir):
    with TestClient(create_app(settings=Settings(model=small_model_dir, api_key=None))) as client:
        yield client


def test_the_test_model_has_labels_that_need_escaping(own_model):
    assert len(own_model.labels) == 11 and own_model.title == TITLE
    assert {"Crime, Mystery", '100% "true" <i>stories</i>', "Ciencia ficción & Fantasía"} <= set(own_model.labels)
    keys = dict(zip(own_model.labels, own_model.probability_keys, strict=True))
    assert keys["Crime, Mystery"] == "p_Crime%2C Mystery"
    assert keys['100% "true" <i>stories</i>'] == "p_100%25 %22true%22 <i>stories</i>"
    assert keys["Ciencia ficción & Fantasía"] == "p_Ciencia ficción & Fantasía"


# --- the default: exactly the original -----------------------------------------------------------


def test_default_inference_keys_are_the_originals_in_order(default_client, small_model):
    assert list(PROBABILITY_KEYS) == ORIGINAL_KEYS
    assert small_model.probability_keys == PROBABILITY_KEYS
    response = default_client.get("/inference", params={"plot": E2_PLOT})
    assert response.status_code == 200
    assert list(response.json()["clasification"]) == ORIGINAL_KEYS
    # The body as bytes: the original's keys in the original's order, nothing else.
    expected = small_model.predict_proba([E2_PLOT])[0]
    record = dict(zip(ORIGINAL_KEYS, map(float, expected), strict=True))
    assert response.content == json.dumps({"clasification": record}, separators=(",", ":")).encode()


def test_default_predict_is_keyed_by_the_24_genres(default_client):
    body = default_client.post("/v1/predict", json={"items": [{"id": "e1", "plot": E1_PLOT}]}).json()
    assert list(body["predictions"][0]["probabilities"]) == list(GENRES)
    assert [label["name"] for label in default_client.get("/v1/model").json()["labels"]] == list(GENRES)


def test_default_explains_all_24_when_asked_for_more(default_client):
    """``explain_top`` is bounded by the most labels a model can have; a model explains at most
    its own."""
    body = {"items": [{"id": "1", "plot": E2_PLOT}], "explain": True, "explain_top": 30}
    prediction = default_client.post("/v1/predict", json=body).json()["predictions"][0]
    assert sorted(entry["genre"] for entry in prediction["explanation"]) == sorted(GENRES)


# --- a model of its own labels ------------------------------------------------------------------


@pytest.mark.parametrize("plot", [E1_PLOT, E2_PLOT], ids=["E1", "E2"])
def test_inference_keys_are_the_models(own_client, own_model, plot):
    response = own_client.get("/inference", params={"plot": plot})
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["clasification"]
    assert list(body["clasification"]) == list(own_model.probability_keys)
    assert "p_Crime%2C Mystery" in body["clasification"]
    expected = own_model.probability_record(own_model.predict_proba([plot])[0])
    assert body["clasification"] == pytest.approx(expected, abs=1e-12)
    assert '"p_100%25 %22true%22 <i>stories</i>":' in response.text  # the key as written, in JSON


def test_inference_explains_the_models_labels(own_client, own_model):
    response = own_client.get("/inference", params={"plot": E2_PLOT, "explain": "true", "explain_top": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    by_label = dict(zip(own_model.labels, body["clasification"].values(), strict=True))
    top = sorted(by_label, key=by_label.get, reverse=True)[:2]
    assert [entry["genre"] for entry in body["explanation"]] == top
    assert all(entry["probability"] == by_label[entry["genre"]] for entry in body["explanation"])


def test_predict_is_keyed_by_the_models_labels(own_client, own_model):
    items = [{"id": "e1", "plot": E1_PLOT, "title": "Message in a Bottle"}, {"id": "e2", "plot": E2_PLOT}]
    response = own_client.post("/v1/predict", json={"items": items})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"id": own_model.id, "kind": "linear"}
    expected = own_model.predict_proba(items)
    for prediction, row, predicted in zip(body["predictions"], expected, own_model.label_sets(expected),
                                          strict=True):
        assert list(prediction["probabilities"]) == list(own_model.labels)
        assert list(prediction["probabilities"].values()) == pytest.approx(row.tolist(), abs=1e-12)
        assert prediction["genres"] == predicted
        assert prediction["genres"] and set(prediction["genres"]) <= set(own_model.labels)


@pytest.mark.parametrize("top", [3, 11, 12, MAX_LABELS])
def test_predict_explains_at_most_the_models_labels(own_client, own_model, top):
    body = {"items": [{"id": "1", "plot": E2_PLOT}], "explain": True, "explain_top": top}
    response = own_client.post("/v1/predict", json=body)
    assert response.status_code == 200, response.text
    prediction = response.json()["predictions"][0]
    probabilities = prediction["probabilities"]
    expected = sorted(probabilities, key=probabilities.get, reverse=True)[: min(top, len(own_model.labels))]
    assert [entry["genre"] for entry in prediction["explanation"]] == expected


def test_explain_top_over_the_most_labels_is_refused(own_client):
    body = {"items": [{"id": "1", "plot": E2_PLOT}], "explain": True, "explain_top": MAX_LABELS + 1}
    response = own_client.post("/v1/predict", json=body)
    assert response.status_code == 422 and "explain_top" in response.json()["error"]["message"]
    query = {"plot": E2_PLOT, "explain": "true", "explain_top": MAX_LABELS + 1}
    assert own_client.get("/inference", params=query).status_code == 422


def test_model_lists_the_labels_and_title(own_client, own_model):
    card = own_client.get("/v1/model").json()
    assert [label["name"] for label in card["labels"]] == list(own_model.labels)
    assert all(isinstance(label["positives"], int) and label["positives"] > 0 for label in card["labels"])
    assert card["title"] == TITLE
    assert set(card.get("thresholds", {})) <= set(own_model.labels)


def test_openapi_documents_labels(own_client):
    schema = own_client.get("/openapi.json").json()
    parameters = {p["name"]: p for p in schema["paths"]["/inference"]["get"]["parameters"]}
    assert parameters["explain_top"]["schema"]["maximum"] == MAX_LABELS
    models = schema["components"]["schemas"]
    assert models["PredictRequest"]["properties"]["explain_top"]["maximum"] == MAX_LABELS
    assert "label" in models["Prediction"]["properties"]["probabilities"]["description"]
    assert "p_<label>" in models["InferenceResponse"]["properties"]["clasification"]["description"]
    card = schema["paths"]["/v1/model"]["get"]
    assert "labels" in card["responses"]["200"]["description"] and "labels" in card["description"]


# --- the Lambda handler -----------------------------------------------------------------------


def test_lambda_answers_with_the_models_keys(monkeypatch, own_model_dir, own_model, small_model_dir):
    module = load_handler(monkeypatch, own_model_dir)
    try:
        response = module.handler(event("rest-inference.json"), None)
        assert response["statusCode"] == 200, response
        body = body_of(response)
        assert list(body["clasification"]) == list(own_model.probability_keys)
        expected = own_model.probability_record(own_model.predict_proba([E1_PLOT])[0])
        assert body["clasification"] == pytest.approx(expected, abs=1e-12)
        predicted = body_of(module.handler(event("http-api-predict.json"), None))
        assert all(list(p["probabilities"]) == list(own_model.labels) for p in predicted["predictions"])
        summary = module.check()  # the container image's build-time check passes for own labels
        assert own_model.id in summary and "top label " in summary
    finally:
        load_handler(monkeypatch, small_model_dir)
