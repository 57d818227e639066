"""The Lambda handler, fed the event documents in deploy/aws/events/ in process, and the SAM
template checked by cfn-lint."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from tests.support.needs import DEV_EXTRA, need, need_module

from conftest import E1_PLOT, E2_PLOT
from moviegenre.core.genres import GENRES, PROBABILITY_KEYS
from moviegenre.core.labels import MAX_LABELS
from moviegenre.model.genre_model import as_probability_record

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "aws"
EVENTS = DEPLOY / "events"
INFERENCE_EVENTS = ["rest-inference.json", "http-api-inference.json", "function-url-inference.json"]
PREDICT_EVENTS = ["rest-predict.json", "http-api-predict.json"]


def event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def load_handler(monkeypatch, model_dir, api_key: str | None = None):
    """Import (or re-import) moviegenre.api.lambda_handler the way Lambda does: environment first."""
    monkeypatch.setenv("MOVIEGENRE_MODEL", str(model_dir))
    if api_key is None:
        monkeypatch.delenv("MOVIEGENRE_API_KEY", raising=False)
    else:
        monkeypatch.setenv("MOVIEGENRE_API_KEY", api_key)
    module = sys.modules.get("moviegenre.api.lambda_handler")
    return importlib.reload(module) if module else importlib.import_module("moviegenre.api.lambda_handler")


@pytest.fixture(scope="module")
def handler(small_model_dir):
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield load_handler(monkeypatch, small_model_dir).handler


def body_of(response: dict) -> dict:
    assert response["isBase64Encoded"] is False
    assert response["headers"]["content-type"] == "application/json"
    return json.loads(response["body"])


def assert_error(response: dict, status: int, code: str) -> dict:
    assert response["statusCode"] == status, response
    body = body_of(response)
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]


def test_event_documents_are_the_three_kinds():
    rest = event("rest-inference.json")
    assert "version" not in rest and rest["requestContext"]["stage"] == "Prod"
    assert rest["requestContext"]["path"] == "/Prod/inference"
    http_api = event("http-api-inference.json")
    assert http_api["version"] == "2.0" and ".execute-api." in http_api["requestContext"]["domainName"]
    function_url = event("function-url-inference.json")
    assert function_url["version"] == "2.0" and ".lambda-url." in function_url["requestContext"]["domainName"]
    for name in INFERENCE_EVENTS:
        assert E1_PLOT in json.dumps(event(name)).replace("\\u2019", "'")


@pytest.mark.parametrize("name", INFERENCE_EVENTS)
def test_inference_events_answer_the_original_body(handler, small_model, name):
    response = handler(event(name), None)

    assert response["statusCode"] == 200, response
    body = body_of(response)
    assert list(body) == ["clasification"]
    assert list(body["clasification"]) == list(PROBABILITY_KEYS)
    expected = as_probability_record(small_model.predict_proba([E1_PLOT])[0])
    assert body["clasification"] == pytest.approx(expected, abs=1e-12)


def with_query(document: dict, **parameters: str) -> dict:
    """An event document with more query parameters, as API Gateway would deliver them."""
    document = copy.deepcopy(document)
    if document.get("version") == "2.0":
        document["rawQueryString"] += "".join(f"&{name}={value}" for name, value in parameters.items())
        document["queryStringParameters"].update(parameters)
    else:
        document["queryStringParameters"].update(parameters)
        document["multiValueQueryStringParameters"].update({name: [v] for name, v in parameters.items()})
    return document


@pytest.mark.parametrize("name", INFERENCE_EVENTS)
def test_inference_events_explain_on_request(handler, small_model, name):
    plain = body_of(handler(event(name), None))
    response = handler(with_query(event(name), explain="true", explain_top="2"), None)

    assert response["statusCode"] == 200, response
    body = body_of(response)
    assert list(body) == ["clasification", "explanation"]
    assert body["clasification"] == plain["clasification"]
    probabilities = {key.removeprefix("p_"): value for key, value in body["clasification"].items()}
    assert [entry["genre"] for entry in body["explanation"]] == sorted(probabilities, key=probabilities.get,
                                                                     reverse=True)[:2]
    for entry in body["explanation"]:
        assert entry["probability"] == probabilities[entry["genre"]]
        parts = entry["intercept"] + sum(t["weight"] for t in entry["terms"]) + entry["other_terms"]
        assert parts == pytest.approx(entry["score"], abs=1e-9) and entry["embedding"] is None
        assert all(t["field"] == "plot" and t["term"] in E1_PLOT for t in entry["terms"])
    refused = handler(with_query(event(name), explain="true", explain_top=str(MAX_LABELS + 1)), None)
    assert "explain_top" in assert_error(refused, 422, "invalid_request")["message"]


def test_the_three_event_kinds_give_the_same_body(handler):
    bodies = {name: handler(event(name), None)["body"] for name in INFERENCE_EVENTS}
    assert len(set(bodies.values())) == 1, bodies


@pytest.mark.parametrize("name", PREDICT_EVENTS)
def test_predict_events(handler, small_model, name):
    body = body_of(handler(event(name), None))
    assert [p["id"] for p in body["predictions"]] == ["e1", "e2"]
    assert list(body["predictions"][1]["probabilities"]) == list(GENRES)
    items = json.loads(event(name)["body"])["items"]
    assert [item["plot"] for item in items] == [E1_PLOT, E2_PLOT]
    got = [list(p["probabilities"].values()) for p in body["predictions"]]
    np.testing.assert_allclose(got, small_model.predict_proba(items), atol=1e-12)


def test_the_original_projects_sample_event_still_works(handler):
    original = event("original-sample.json")
    assert set(original) == {"httpMethod", "queryStringParameters"}
    body = body_of(handler(original, None))
    assert list(body["clasification"]) == list(PROBABILITY_KEYS)


def test_http_api_on_a_named_stage(handler):
    staged = event("http-api-inference.json")
    staged["rawPath"] = staged["requestContext"]["http"]["path"] = "/Prod/inference"
    staged["requestContext"]["stage"] = "Prod"
    assert handler(staged, None)["body"] == handler(event("http-api-inference.json"), None)["body"]


def _without_plot(document: dict) -> dict:
    document = copy.deepcopy(document)
    if document.get("version") == "2.0":
        document["rawQueryString"] = ""
        document.pop("queryStringParameters", None)
    else:
        document["queryStringParameters"] = document["multiValueQueryStringParameters"] = None
    return document


@pytest.mark.parametrize("name", INFERENCE_EVENTS)
def test_missing_plot_is_a_json_422(handler, name):
    error = assert_error(handler(_without_plot(event(name)), None), 422, "invalid_request")
    assert "plot" in error["message"]


@pytest.mark.parametrize("name", PREDICT_EVENTS)
def test_bad_bodies_are_json_errors(handler, name):
    malformed = {**event(name), "body": '{"items": ['}
    assert_error(handler(malformed, None), 400, "malformed_json")
    blank = {**event(name), "body": json.dumps({"items": [{"id": "1", "plot": "   "}]})}
    assert_error(handler(blank, None), 422, "invalid_request")
    empty = {**event(name), "body": json.dumps({"items": []})}
    assert_error(handler(empty, None), 422, "invalid_request")


def test_unknown_route_is_a_json_404(handler):
    document = event("rest-inference.json")
    document["path"] = document["resource"] = "/nope"
    assert_error(handler(document, None), 404, "not_found")


def test_api_key_on_lambda(monkeypatch, small_model_dir):
    keyed = load_handler(monkeypatch, small_model_dir, api_key="lambda-key").handler
    try:
        assert_error(keyed(event("rest-inference.json"), None), 401, "unauthorized")
        with_key = event("rest-inference.json")
        with_key["headers"]["x-api-key"] = "lambda-key"
        with_key["multiValueHeaders"]["x-api-key"] = ["lambda-key"]
        assert keyed(with_key, None)["statusCode"] == 200
        health = event("http-api-inference.json")
        health["rawPath"] = health["requestContext"]["http"]["path"] = "/healthz"
        assert keyed(health, None)["statusCode"] == 200
    finally:
        load_handler(monkeypatch, small_model_dir)


def test_unloadable_model_answers_503_instead_of_failing_init(monkeypatch, small_model_dir, tmp_path):
    module = load_handler(monkeypatch, tmp_path / "no-model")
    try:
        ready = event("http-api-inference.json")
        ready["rawPath"] = ready["requestContext"]["http"]["path"] = "/readyz"
        assert "does not exist" in assert_error(module.handler(ready, None), 503, "model_not_ready")["message"]
        assert_error(module.handler(event("rest-inference.json"), None), 503, "model_not_ready")
    finally:
        load_handler(monkeypatch, small_model_dir)


# --- the SAM template -------------------------------------------------------------------------


def _cfn_lint() -> list[str] | None:
    if shutil.which("cfn-lint"):
        return ["cfn-lint"]
    if importlib.util.find_spec("cfnlint"):
        return [sys.executable, "-m", "cfnlint"]
    return None


def test_template_passes_cfn_lint():
    command = _cfn_lint()
    need(command is not None, f"cfn-lint is not installed; {DEV_EXTRA}")
    result = subprocess.run([*command, str(DEPLOY / "template.yaml")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_template_declares_the_image_function_and_its_events():
    cfn_yaml = need_module("cfnlint.decode.cfn_yaml")
    template = cfn_yaml.load(str(DEPLOY / "template.yaml"))
    function = template["Resources"]["MovieGenreFunction"]["Properties"]
    assert function["PackageType"] == "Image"
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in function["Events"].values()}
    assert {("get", "/inference"), ("post", "/v1/predict")} <= routes
    assert all(e["Type"] == "Api" for e in function["Events"].values())


def dockerfile_instructions() -> list[tuple[str, str]]:
    """deploy/aws/Dockerfile as (instruction, arguments), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def package_extras() -> set[str]:
    pyproject = tomllib.loads((DEPLOY.parents[1] / "pyproject.toml").read_text())
    return set(pyproject["project"]["optional-dependencies"])


def test_dockerfile_uses_the_lambda_base_image_and_handler():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "public.ecr.aws/lambda/python:3.11")
    assert instructions[-1] == ("CMD", '["moviegenre.api.lambda_handler.handler"]')


def test_dockerfile_installs_the_extras_it_is_given_and_checks_by_predicting():
    instructions = dockerfile_instructions()

    def position(instruction: str, pattern: str) -> int:
        found = [i for i, (name, args) in enumerate(instructions) if name == instruction and re.search(pattern, args)]
        assert len(found) == 1, (instruction, pattern, instructions)
        return found[0]

    extras_arg = position("ARG", r"^EXTRAS=")
    assert instructions[extras_arg][1] == "EXTRAS=lambda"  # the default serves linear and seed models
    install = position("RUN", r"pip install .*/tmp/moviegenre\[\$\{EXTRAS\}\]")
    model_copy = position("COPY", r"^\$\{MODEL_DIR\} /opt/moviegenre/model$")
    model_env = position("ENV", r"MOVIEGENRE_MODEL=/opt/moviegenre/model")
    check = position("RUN", r"^python -m moviegenre\.api\.lambda_handler --check( |$)")
    assert extras_arg < install < model_copy < check and model_env < check


def test_the_extras_the_deploy_guide_names_exist():
    guide = (DEPLOY / "README.md").read_text()
    named = re.findall(r"EXTRAS=([\w,-]+)", guide)
    assert named, "deploy/aws/README.md shows no EXTRAS build argument"
    extras = package_extras()
    for value in named:
        assert set(value.split(",")) <= extras, (value, extras)
