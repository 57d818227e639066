"""The HTTP API through Starlette's TestClient, on the small linear model trained on real movies."""

from __future__ import annotations

import dataclasses
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import E1_PLOT, E2_PLOT
from moviegenre.api.app import create_app, max_url_bytes
from moviegenre.core.data import load_movies
from moviegenre.core.genres import GENRES, PROBABILITY_KEYS
from moviegenre.core.labels import MAX_LABELS
from moviegenre.core.settings import Settings
from moviegenre.kinds.registry import get_kind, register
from moviegenre.model.explain import explainable_kinds
from moviegenre.model.genre_model import GenreModel, as_probability_record

API_KEY = "test-key-7f3a"


def settings_for(model_dir: Path | str, **overrides) -> Settings:
    # Explicit api_key, so a key in the developer's environment cannot leak into these tests.
    return Settings(model=Path(model_dir), **{"api_key": None, **overrides})


@pytest.fixture(scope="module")
def client(small_model_dir):
    with TestClient(create_app(settings=settings_for(small_model_dir))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def tight_client(small_model):
    """Small limits, so every limit can be crossed cheaply."""
    settings = settings_for("unused", max_plot_chars=100, max_items=3, max_body_bytes=2_000, request_timeout_s=5)
    with TestClient(create_app(small_model, settings)) as test_client:
        yield test_client


def assert_error(response, status: int, code: str, message: str = "") -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert re.search(message, body["error"]["message"]), body["error"]["message"]
    assert "Traceback" not in response.text
    return body["error"]


# --- the original's endpoint, drop-in ---------------------------------------------------------


@pytest.mark.parametrize("plot", [E1_PLOT, E2_PLOT], ids=["E1", "E2"])
def test_inference_has_the_original_shape(client, small_model, plot):
    response = client.get("/inference", params={"plot": plot})

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["clasification"]
    assert list(body["clasification"]) == list(PROBABILITY_KEYS)
    assert all(0.0 <= p <= 1.0 for p in body["clasification"].values())
    expected = as_probability_record(small_model.predict_proba([plot])[0])
    assert body["clasification"] == pytest.approx(expected, abs=1e-12)


def test_inference_ranks_the_readme_examples_sensibly(client):
    e1 = client.get("/inference", params={"plot": E1_PLOT}).json()["clasification"]
    e2 = client.get("/inference", params={"plot": E2_PLOT}).json()["clasification"]
    # The original README: E1 is a romance (Romance 0.63, Action 0.13), E2 a drama (Drama 0.82).
    assert e1["p_Romance"] > e1["p_Action"]
    assert max(e2, key=e2.get) == "p_Drama"


def test_inference_decodes_the_query_string(client, small_model):
    plot = "a cowboy & his horse ride west; café brawls, 100% grit?"
    response = client.get("/inference", params={"plot": plot})
    expected = as_probability_record(small_model.predict_proba([plot])[0])
    assert response.json()["clasification"] == pytest.approx(expected, abs=1e-12)


# --- version 1 --------------------------------------------------------------------------------


def test_predict_scores_100_real_plots_in_one_call(client, small_model, testing_zip):
    movies = load_movies(testing_zip, labelled=False).frame.iloc[:100]
    items = [{"id": str(movie_id), "plot": row["plot"], "title": row["title"]} for movie_id, row in movies.iterrows()]

    response = client.post("/v1/predict", json={"items": items})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"id": small_model.id, "kind": small_model.kind}
    predictions = body["predictions"]
    assert [p["id"] for p in predictions] == [item["id"] for item in items]
    proba = np.array([list(p["probabilities"].values()) for p in predictions])
    assert all(list(p["probabilities"]) == list(GENRES) for p in predictions)
    expected = small_model.predict_proba(items)
    np.testing.assert_allclose(proba, expected, atol=1e-12)
    assert [p["genres"] for p in predictions] == small_model.label_sets(expected)
    assert all(p["genres"] and set(p["genres"]) <= set(GENRES) for p in predictions)


def test_predict_accepts_an_optional_title_and_bounds_it(client):
    item = {"id": "a", "plot": E2_PLOT, "title": "Midnight Express"}
    assert client.post("/v1/predict", json={"items": [item]}).status_code == 200
    response = client.post("/v1/predict", json={"items": [{**item, "title": "t" * 1001}]})
    assert_error(response, 422, "invalid_request", r"items\[0\]\.title")


def test_genres_follow_the_models_thresholds(client, small_model):
    response = client.post("/v1/predict", json={"items": [{"id": "e2", "plot": E2_PLOT}]})
    prediction = response.json()["predictions"][0]
    thresholds = dict(zip(small_model.genres, small_model.thresholds, strict=True))
    reached = [g for g, p in prediction["probabilities"].items() if p >= thresholds[g]]
    assert set(prediction["genres"]) == set(reached or prediction["genres"][:1])
    ordered = [prediction["probabilities"][g] for g in prediction["genres"]]
    assert ordered == sorted(ordered, reverse=True)


def test_model_card_is_model_json(client, small_model_dir):
    import json

    response = client.get("/v1/model")
    assert response.status_code == 200
    assert response.json() == json.loads((small_model_dir / "model.json").read_text())
    assert set(response.json()["thresholds"]) == set(GENRES)


def test_limits(client):
    assert client.get("/v1/limits").json() == {"max_plot_chars": 20_000, "max_items": 256, "max_explained_items": 64}


# --- operations -------------------------------------------------------------------------------


def test_health_and_ready(client, small_model):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model": {"id": small_model.id, "kind": small_model.kind}}


def test_metrics_count_requests_latency_and_predictions(small_model):
    with TestClient(create_app(small_model, settings_for("unused"))) as fresh:
        fresh.get("/inference", params={"plot": E1_PLOT})
        fresh.get("/inference", params={"plot": E2_PLOT})
        fresh.post("/v1/predict", json={"items": [{"id": "1", "plot": E1_PLOT}, {"id": "2", "plot": E2_PLOT}]})
        fresh.get("/inference")
        fresh.get("/no/such/route")
        text = fresh.get("/metrics").text

    def value(sample: str) -> float:
        match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
        assert match, f"{sample} not in metrics:\n{text}"
        return float(match.group(1))

    requests = "moviegenre_http_requests_total"
    assert value(f'{requests}{{method="GET",route="/inference",status="200"}}') == 2
    assert value(f'{requests}{{method="GET",route="/inference",status="422"}}') == 1
    assert value(f'{requests}{{method="POST",route="/v1/predict",status="200"}}') == 1
    assert value(f'{requests}{{method="GET",route="unmatched",status="404"}}') == 1
    assert value('moviegenre_http_request_duration_seconds_count{route="/inference"}') == 3
    assert value('moviegenre_http_request_duration_seconds_bucket{le="10.0",route="/inference"}') == 3
    assert value('moviegenre_predictions_total{route="/inference"}') == 2
    assert value('moviegenre_predictions_total{route="/v1/predict"}') == 2


def test_each_app_has_its_own_metrics_registry(small_model):
    first, second = (create_app(small_model, settings_for("unused")) for _ in range(2))
    with TestClient(first) as a, TestClient(second) as b:
        a.get("/healthz")
        assert 'route="/healthz"' in a.get("/metrics").text
        assert 'route="/healthz"' not in b.get("/metrics").text


def test_openapi_docs(client):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/inference", "/v1/predict", "/v1/model", "/v1/limits", "/healthz", "/readyz"} <= set(schema["paths"])
    assert "example" in schema["components"]["schemas"]["PredictRequest"]


def test_web_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.get("/static/index.html").status_code == 200


# --- errors: one JSON shape -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status", "code", "message"),
    [
        ("GET", "/inference", {}, 422, "invalid_request", r"query parameter 'plot': Field required"),
        ("GET", "/inference?plot=", {}, 422, "invalid_request", "blank"),
        ("GET", "/inference", {"params": {"plot": " \n\t "}}, 422, "invalid_request", "blank"),
        ("GET", "/inference", {"params": {"plot": "x" * 20_001}}, 413, "plot_too_long", "20,001 characters"),
        ("POST", "/v1/predict", {"json": {"items": []}}, 422, "invalid_request", r"items: List should have at least 1"),
        ("POST", "/v1/predict", {"json": {}}, 422, "invalid_request", "items: Field required"),
        ("POST", "/v1/predict", {"json": {"items": [{"id": "1", "plot": "ok"}, {"id": "2", "plot": "  "}]}},
         422, "invalid_request", r"items\[1\]\.plot \(id '2'\) is blank"),
        ("POST", "/v1/predict", {"json": {"items": [{"id": "1"}]}}, 422, "invalid_request", r"items\[0\]\.plot: Field required"),
        ("POST", "/v1/predict", {"json": {"items": [{"id": "1", "plot": 7}]}}, 422, "invalid_request", r"items\[0\]\.plot"),
        ("POST", "/v1/predict", {"json": {"items": [{"id": "1", "plot": "x" * 20_001}]}}, 413, "plot_too_long",
         r"items\[0\]\.plot \(id '1'\)"),
        ("POST", "/v1/predict", {"json": {"items": [{"id": str(i), "plot": "x"} for i in range(257)]}},
         413, "too_many_items", "257 items.*limit is 256"),
        ("POST", "/v1/predict", {"content": b'{"items": [', "headers": {"content-type": "application/json"}},
         400, "malformed_json", "not valid JSON"),
        ("POST", "/v1/predict", {"content": b"plot=x", "headers": {"content-type": "application/x-www-form-urlencoded"}},
         415, "unsupported_media_type", "Content-Type: application/json"),
        ("GET", "/no/such/route", {}, 404, "not_found", "/no/such/route"),
        ("GET", "/v1/predict", {}, 405, "method_not_allowed", "GET is not allowed"),
        ("POST", "/inference", {}, 405, "method_not_allowed", "POST is not allowed"),
        ("GET", "/static/no-such-file.js", {}, 404, "not_found", ""),
    ],
    ids=["missing-plot", "empty-plot", "blank-plot", "long-plot", "empty-items", "no-items", "blank-item",
         "item-without-plot", "plot-not-text", "long-item-plot", "too-many-items", "malformed-json",
         "form-body", "unknown-route", "wrong-method-get", "wrong-method-post", "missing-static"],
)  # fmt: skip
def test_errors_share_one_json_shape(client, method, url, kwargs, status, code, message):
    assert_error(client.request(method, url, **kwargs), status, code, message)


def test_wrong_method_says_which_are_allowed(client):
    assert client.post("/healthz").headers["allow"] == "GET"


def test_limits_come_from_settings(tight_client):
    assert tight_client.get("/v1/limits").json() == {"max_plot_chars": 100, "max_items": 3, "max_explained_items": 64}
    assert_error(tight_client.get("/inference", params={"plot": "x" * 101}), 413, "plot_too_long", "limit is 100")
    items = [{"id": str(i), "plot": "x"} for i in range(4)]
    assert_error(tight_client.post("/v1/predict", json={"items": items}), 413, "too_many_items", "limit is 3")


def test_body_over_the_limit_is_refused_by_its_declared_length(tight_client):
    body = b'{"items": [{"id": "1", "plot": "' + b"x" * 3_000 + b'"}]}'
    response = tight_client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert_error(response, 413, "payload_too_large", "larger than 2,000 bytes")


def test_chunked_body_over_the_limit_is_refused_while_reading(tight_client):
    def chunks():
        yield b'{"items": [{"id": "1", "plot": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}]}'

    response = tight_client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large", "larger than 2,000 bytes")


def test_overlong_url_is_answered_by_the_app(tight_client):
    limit = max_url_bytes(Settings(max_plot_chars=100))
    response = tight_client.get("/inference", params={"plot": "x" * limit})
    assert_error(response, 414, "uri_too_long", "POST /v1/predict")
    assert_error(tight_client.get("/unknown?" + "q" * limit), 414, "uri_too_long")


class _FailingModel(GenreModel):
    def predict_proba(self, items, **kwargs):
        raise RuntimeError("secret internal detail")


class _SlowModel(GenreModel):
    def predict_proba(self, items, **kwargs):
        time.sleep(2)
        return super().predict_proba(items, **kwargs)


def test_unhandled_exception_is_a_500_without_details(small_model):
    model = _FailingModel(small_model.pipeline, small_model.metadata)
    with TestClient(create_app(model, settings_for("unused")), raise_server_exceptions=False) as failing:
        response = failing.get("/inference", params={"plot": E1_PLOT})
    error = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and "RuntimeError" not in response.text
    assert error["message"] == "the server failed to answer this request"


def test_slow_prediction_times_out_with_504(small_model):
    model = _SlowModel(small_model.pipeline, small_model.metadata)
    with TestClient(create_app(model, settings_for("unused", request_timeout_s=0.2))) as slow:
        started = time.perf_counter()
        response = slow.post("/v1/predict", json={"items": [{"id": "1", "plot": E1_PLOT}]})
        elapsed = time.perf_counter() - started
        assert_error(response, 504, "timeout", "longer than 0.2 s")
        assert elapsed < 1.5
        assert slow.get("/healthz").status_code == 200


# --- API key ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed_client(small_model):
    with TestClient(create_app(small_model, settings_for("unused", api_key=API_KEY))) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("method", "url", "kwargs"),
    [
        ("GET", "/inference", {"params": {"plot": E2_PLOT}}),
        ("POST", "/v1/predict", {"json": {"items": [{"id": "1", "plot": E2_PLOT}]}}),
        ("GET", "/v1/model", {}),
        ("GET", "/v1/limits", {}),
        ("GET", "/metrics", {}),
    ],
)
def test_api_key_is_required_when_configured(keyed_client, method, url, kwargs):
    assert_error(keyed_client.request(method, url, **kwargs), 401, "unauthorized", "x-api-key")
    wrong = keyed_client.request(method, url, headers={"x-api-key": API_KEY + "x"}, **kwargs)
    assert_error(wrong, 401, "unauthorized")
    right = keyed_client.request(method, url, headers={"x-api-key": API_KEY}, **kwargs)
    assert right.status_code == 200, right.text


@pytest.mark.parametrize("url", ["/healthz", "/readyz", "/", "/static/index.html", "/docs", "/openapi.json"])
def test_health_page_and_docs_need_no_key(keyed_client, url):
    assert keyed_client.get(url).status_code == 200


def test_openapi_declares_the_key(keyed_client):
    schema = keyed_client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey", "in": "header", "name": "x-api-key"
    }  # fmt: skip
    assert schema["paths"]["/v1/predict"]["post"]["security"] == [{"ApiKey": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"]


def test_no_key_configured_means_none_needed(client):
    assert client.get("/inference", params={"plot": E1_PLOT}).status_code == 200
    assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})


# --- a model that cannot be loaded: up, but not ready ----------------------------------------


@pytest.fixture
def tampered_model_dir(small_model_dir, tmp_path) -> Path:
    directory = tmp_path / "tampered"
    shutil.copytree(small_model_dir, directory)
    with open(directory / "model.skops", "ab") as artifact:
        artifact.write(b"\0tampered")
    return directory


@pytest.mark.parametrize("which", ["tampered", "missing"])
def test_unloadable_model_keeps_the_server_up_but_not_ready(which, tampered_model_dir, tmp_path):
    directory = tampered_model_dir if which == "tampered" else tmp_path / "no-such-model"
    with TestClient(create_app(settings=settings_for(directory))) as broken:
        assert broken.get("/healthz").status_code == 200
        reason = "altered or truncated" if which == "tampered" else "does not exist"
        assert_error(broken.get("/readyz"), 503, "model_not_ready", reason)
        assert_error(broken.get("/inference", params={"plot": E1_PLOT}), 503, "model_not_ready", reason)
        assert_error(broken.get("/v1/model"), 503, "model_not_ready")


def test_load_now_records_the_failure_instead_of_raising(tampered_model_dir):
    app = create_app(settings=settings_for(tampered_model_dir), load_now=True)
    assert app.state.model_state.model is None
    assert "altered" in app.state.model_state.error


def test_readyz_is_503_before_startup_has_loaded_the_model(small_model_dir):
    client = TestClient(create_app(settings=settings_for(small_model_dir)))  # no lifespan yet
    assert_error(client.get("/readyz"), 503, "model_not_ready", "still loading")


# --- explanations -----------------------------------------------------------------------------

#: Capitals, punctuation and a word pair split by a stop word, as a client might send them.
EXPLAINED_PLOT = "The Outlaw gang KILLED his brother, so a lone gunfighter rides into Tombstone."


def assert_explained(explanation: list[dict], probabilities: dict[str, float], texts: dict[str, str], top: int) -> None:
    """``top`` genres, most probable first, with the prediction's probabilities; each entry's
    parts add up to its score, and every term is a word of the request's own text."""
    assert [entry["genre"] for entry in explanation] == sorted(probabilities, key=probabilities.get, reverse=True)[:top]
    for entry in explanation:
        assert list(entry) == ["genre", "probability", "score", "intercept", "terms", "other_terms", "embedding"]
        assert entry["probability"] == probabilities[entry["genre"]]
        parts = entry["intercept"] + sum(t["weight"] for t in entry["terms"]) + entry["other_terms"]
        assert parts + (entry["embedding"] or 0) == pytest.approx(entry["score"], abs=1e-9)
        assert 0 < len(entry["terms"]) <= 10
        for term in entry["terms"]:
            assert list(term) == ["term", "field", "weight"]
            assert term["term"] in texts[term["field"]], term


@pytest.mark.parametrize("flag", [None, "false", "0"])
def test_inference_without_the_flag_is_exactly_the_original_body(client, small_model, flag):
    params = {"plot": EXPLAINED_PLOT} if flag is None else {"plot": EXPLAINED_PLOT, "explain": flag}
    response = client.get("/inference", params=params)
    assert response.status_code == 200
    expected = {"clasification": as_probability_record(small_model.predict_proba([EXPLAINED_PLOT])[0])}
    assert response.json() == expected
    assert response.text == client.get("/inference", params={"plot": EXPLAINED_PLOT}).text


@pytest.mark.parametrize("top", [None, 1, 5, 24])
def test_inference_explains_the_top_genres(client, small_model, top):
    params = {"plot": EXPLAINED_PLOT, "explain": "true"} | ({} if top is None else {"explain_top": top})
    response = client.get("/inference", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["clasification", "explanation"]
    plain = client.get("/inference", params={"plot": EXPLAINED_PLOT}).json()
    assert body["clasification"] == plain["clasification"]
    probabilities = {key.removeprefix("p_"): p for key, p in body["clasification"].items()}
    assert_explained(body["explanation"], probabilities, {"plot": EXPLAINED_PLOT}, top or 3)
    assert all(entry["embedding"] is None for entry in body["explanation"])
    terms = {t["term"] for entry in body["explanation"] for t in entry["terms"]}
    assert "killed brother" not in terms and "killed" not in terms  # words as sent, never pairs


def test_predict_explains_each_item_on_request(client, small_model):
    items = [
        {"id": "e2", "title": "Midnight Express", "year": 1978, "plot": E2_PLOT},
        {"id": "x", "title": "The Outlaw Josey Wales", "plot": EXPLAINED_PLOT},
    ]
    plain = client.post("/v1/predict", json={"items": items}).json()
    assert all(list(p) == ["id", "probabilities", "genres"] for p in plain["predictions"])
    response = client.post("/v1/predict", json={"items": items, "explain": True, "explain_top": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == plain["model"]
    for item, prediction, before in zip(items, body["predictions"], plain["predictions"], strict=True):
        assert list(prediction) == ["id", "probabilities", "genres", "explanation"]
        assert {key: prediction[key] for key in before} == before
        fields = {"plot": item["plot"], "title": item["title"], "year": str(item.get("year"))}
        assert_explained(prediction["explanation"], prediction["probabilities"], fields, 2)
    assert client.post("/v1/predict", json={"items": items, "explain": False}).json() == plain


@pytest.mark.parametrize("top", [0, MAX_LABELS + 1, -1, "three"])
def test_explain_top_is_bounded(client, top):
    response = client.get("/inference", params={"plot": E1_PLOT, "explain": "true", "explain_top": top})
    assert_error(response, 422, "invalid_request", "query parameter 'explain_top'")
    body = {"items": [{"id": "1", "plot": E1_PLOT}], "explain": True, "explain_top": top}
    assert_error(client.post("/v1/predict", json=body), 422, "invalid_request", "explain_top")


@pytest.mark.parametrize(("field", "value"), [("explain", 0), ("explain", "yes"), ("explain_top", True),
                                            ("explain_top", "3"), ("explain_top", 2.5)])
def test_explain_fields_take_json_types_only(client, field, value):
    body = {"items": [{"id": "1", "plot": E1_PLOT}], "explain": True, field: value}
    assert_error(client.post("/v1/predict", json=body), 422, "invalid_request", field)


def test_openapi_documents_explanations(client):
    schema = client.get("/openapi.json").json()
    parameters = {p["name"]: p for p in schema["paths"]["/inference"]["get"]["parameters"]}
    assert parameters["explain"]["schema"] == {**parameters["explain"]["schema"], "type": "boolean", "default": False}
    top = parameters["explain_top"]["schema"]
    assert (top["type"], top["minimum"], top["maximum"], top["default"]) == ("integer", 1, MAX_LABELS, 3)
    models = schema["components"]["schemas"]
    request = models["PredictRequest"]["properties"]
    assert request["explain"]["default"] is False
    assert (request["explain_top"]["minimum"], request["explain_top"]["maximum"]) == (1, MAX_LABELS)
    for holder in ("InferenceResponse", "Prediction"):
        assert models[holder]["properties"]["explanation"]["items"] == {"$ref": "#/components/schemas/GenreExplanation"}
        assert "explanation" not in models[holder]["required"]
    entry = models["GenreExplanation"]
    assert set(entry["required"]) == set(entry["properties"]) == set(entry["example"])
    assert models["ExplanationTerm"]["properties"]["field"]["enum"] == ["plot", "title", "year"]
    example = entry["example"]
    assert example["intercept"] + sum(t["weight"] for t in example["terms"]) + example["other_terms"] + example[
        "embedding"] == pytest.approx(example["score"], abs=1e-9)


@pytest.fixture(scope="module")
def seed_client(dev_movies):
    from moviegenre.training.train import train

    seed = train("seed", dev_movies.subset(np.arange(40)), cv_folds=0)
    with TestClient(create_app(seed, settings_for("unused"))) as test_client:
        yield test_client


def test_a_model_kind_that_cannot_be_explained_answers_422(seed_client):
    assert seed_client.get("/inference", params={"plot": E1_PLOT}).status_code == 200
    message = "model kind 'seed' cannot be explained; explanations need a model of kind " + re.escape(
        ", ".join(explainable_kinds()[:-1]) + " or " + explainable_kinds()[-1])
    assert_error(seed_client.get("/inference", params={"plot": E1_PLOT, "explain": "true"}), 422, "not_explainable",
                 message)
    body = {"items": [{"id": "1", "plot": E1_PLOT}], "explain": True}
    assert_error(seed_client.post("/v1/predict", json=body), 422, "not_explainable", message)
    assert seed_client.post("/v1/predict", json={"items": body["items"]}).status_code == 200


def test_the_first_explanation_builds_the_explainer_without_stalling_other_requests(small_model):
    """The model's explainer is built on the first explanation, in a worker thread and outside
    the request's time limit: meanwhile other requests are answered at once."""
    started, release = threading.Event(), threading.Event()
    linear = get_kind("linear")

    def slow_explainer(model):
        started.set()
        assert release.wait(30)
        return linear.explainer(model)

    fresh_model = GenreModel(None, small_model.metadata, scorer=small_model.scorer)
    register(dataclasses.replace(linear, explainer=slow_explainer))
    try:
        with TestClient(create_app(fresh_model, settings_for("unused", request_timeout_s=1))) as fresh:
            with ThreadPoolExecutor(1) as pool:
                first = pool.submit(fresh.get, "/inference", params={"plot": E1_PLOT, "explain": "true"})
                assert started.wait(30)
                began = time.perf_counter()
                assert fresh.get("/inference", params={"plot": E2_PLOT}).status_code == 200
                assert fresh.post("/v1/predict", json={"items": [{"id": "1", "plot": E2_PLOT}]}).status_code == 200
                assert fresh.get("/healthz").status_code == 200
                assert time.perf_counter() - began < 1
                time.sleep(1.2)  # past the request time limit: building is not bound by it
                release.set()
                response = first.result(timeout=30)
    finally:
        register(linear)
    assert response.status_code == 200, response.text
    assert len(response.json()["explanation"]) == 3


def test_a_linear_model_explains_without_deserialising_its_pipeline(small_model):
    """A linear model explains from its compiled form: model.skops is never read."""

    def refuse():
        raise AssertionError("explaining deserialised model.skops")

    lazy = GenreModel(None, small_model.metadata, scorer=small_model.scorer, load_pipeline=refuse)
    with TestClient(create_app(lazy, settings_for("unused"))) as fresh:
        got = fresh.get("/inference", params={"plot": EXPLAINED_PLOT, "explain": "true", "explain_top": 24})
        assert got.status_code == 200, got.text
        body = {"items": [{"id": "1", "plot": EXPLAINED_PLOT}], "explain": True, "explain_top": 24}
        assert fresh.post("/v1/predict", json=body).json()["predictions"][0]["explanation"] == got.json()[
            "explanation"]


def test_explanations_follow_the_servers_plot_limit_not_the_environments(small_model):
    # A server configured for longer plots than MOVIEGENRE_MAX_PLOT_CHARS' default explains them too.
    plot = (E1_PLOT + " ") * (25_000 // len(E1_PLOT) + 1)
    settings = Settings(model="unused", api_key=None, max_plot_chars=30_000)
    with TestClient(create_app(small_model, settings)) as long_plots:
        got = long_plots.post("/v1/predict", json={"items": [{"id": "1", "plot": plot[:25_000]}], "explain": True})
        assert got.status_code == 200, got.text
        assert got.json()["predictions"][0]["explanation"]
        got = long_plots.get("/inference", params={"plot": plot[:25_000], "explain": "true"})
        assert got.status_code == 200, got.text
        assert got.json()["explanation"]


def test_an_integer_id_is_taken_as_its_text_and_a_year_as_at_every_door(client):
    """``id``: text or an integer (echoed back as text); ``year``: the input contract's rule, a
    number or text holding one, blank for none, the same answer as the library gives."""
    from moviegenre.core.errors import InvalidItem
    from moviegenre.core.items import check_year

    items = [{"id": 7, "plot": E1_PLOT, "year": 1978}, {"id": "7b", "plot": E1_PLOT, "year": " 1978 "},
             {"id": 8, "plot": E1_PLOT, "year": ""}, {"id": 9, "plot": E1_PLOT}]
    predictions = client.post("/v1/predict", json={"items": items}).json()["predictions"]
    assert [p["id"] for p in predictions] == ["7", "7b", "8", "9"]
    assert predictions[0]["probabilities"] == predictions[1]["probabilities"]
    assert predictions[2]["probabilities"] == predictions[3]["probabilities"]
    for year in ["MCMXC", 3000, True]:
        response = client.post("/v1/predict", json={"items": [{"id": 1, "plot": E1_PLOT, "year": year}]})
        assert response.status_code == 422, year
        with pytest.raises(InvalidItem) as library:
            check_year(year)
        assert response.json()["error"]["message"] == f"items[0].year: {library.value.reason}"  # word for word
    for id_ in [True, 1.5, "", 2**53]:
        response = client.post("/v1/predict", json={"items": [{"id": id_, "plot": E1_PLOT}]})
        assert response.status_code == 422 and response.json()["error"]["message"].startswith("items[0].id: ")
    # What the schema says is what is taken: 7.0 is an integer to JSON Schema, and a year as text
    # is digits (the library would also read "1.978e3").
    response = client.post("/v1/predict", json={"items": [{"id": 7.0, "plot": E1_PLOT, "year": "1978\t"}]})
    assert response.status_code == 200 and response.json()["predictions"][0]["id"] == "7"
    response = client.post("/v1/predict", json={"items": [{"id": 7, "plot": E1_PLOT, "year": "1.978e3"}]})
    assert response.json()["error"]["message"] == "items[0].year: must be a year between 1800 and 2200 or empty, got 1.978e3"
