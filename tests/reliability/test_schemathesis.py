r"""Schemathesis against the app's own OpenAPI schema: no 5xx, and every answer conforms.

Schemathesis generates requests from the schema, valid ones and invalid ones, and runs all its
checks on each answer: no server error, a documented status code, content type and headers, a
body that validates against the documented response schema, valid data accepted and invalid
data refused. The schema is read at import (Schemathesis builds one test per operation at
collection), from an app with the same settings but no model yet; the requests go to an app
serving the session's small model, whose schema is checked to be the same one.

One change is made to the schema before Schemathesis reads it: the plot's pattern,
``[\p{L}\p{N}]`` (a letter or digit, in any script), is spelled out as code point ranges.
Schemathesis reads ``\p{L}`` as Latin letters only, and so takes a Chinese plot for invalid.
"""

from __future__ import annotations

import sys
import unicodedata
from functools import cache

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from reliability_support import settings_for

from moviegenre.api.app import create_app
from moviegenre.core.items import PLOT_PATTERN

API_KEY = "reliability-key-3b9e"
#: Per operation and per generation mode (valid, invalid); the slow run takes more.
EXAMPLES = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
MANY_EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

#: * Invalid requests must be refused with a 4xx. The API answers 413 for a plot over the length
#:   limit or too many items and 414 for an over-long URL, as documented; Schemathesis' default
#:   list of refusals lacks those two.
#: * No undeclared query parameters: the API ignores them, as HTTP APIs commonly do (a cache
#:   buster, a tracking tag), and OpenAPI has no way to say so.
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {"negative_data_rejection": {"expected-statuses": [
            "400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428", "429", "5xx"
        ]}},
        "generation": {"allow-extra-parameters": False},
    }
)  # fmt: skip



@cache
def letter_or_digit_class() -> str:
    r"""``[\p{L}\p{N}]`` as a class of code point ranges, from Python's Unicode database (the
    contract's ``[^\W_]`` matches the same characters). Letters and digits need no escaping."""
    ranges, start = [], None
    for point in range(sys.maxunicode + 2):
        inside = point <= sys.maxunicode and unicodedata.category(chr(point))[0] in "LN"
        if inside and start is None:
            start = point
        elif not inside and start is not None:
            ranges.append(chr(start) if start == point - 1 else f"{chr(start)}-{chr(point - 1)}")
            start = None
    return "[" + "".join(ranges) + "]"


def spelled_out(schema: dict) -> dict:
    """``schema`` with every plot pattern spelled out (see the module's docstring)."""
    if isinstance(schema, dict):
        if schema.get("pattern") == PLOT_PATTERN:
            return {**schema, "pattern": letter_or_digit_class()}
        return {key: spelled_out(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [spelled_out(value) for value in schema]
    return schema


def schema_for(**overrides):
    app = create_app(settings=settings_for(**overrides))
    published = app.openapi()
    schema = schemathesis.openapi.from_dict(spelled_out(published), config=CONFIG)
    schema.app = app  # requests go in process, to the app each test passes
    return published, schema


open_published, open_schema = schema_for()
keyed_published, keyed_schema = schema_for(api_key=API_KEY)


@pytest.fixture(scope="module")
def open_app(small_model):
    return create_app(small_model, settings_for())


@pytest.fixture(scope="module")
def keyed_app(small_model):
    return create_app(small_model, settings_for(api_key=API_KEY))


def test_the_schema_under_test_is_the_one_the_model_serving_apps_publish(open_app, keyed_app):
    assert open_app.openapi() == open_published
    assert keyed_app.openapi() == keyed_published
    assert spelled_out(open_published) == open_schema.raw_schema


def test_the_schema_states_the_limits_of_the_deployment(small_model):
    schema = create_app(small_model, settings_for(max_plot_chars=123, max_items=7)).openapi()
    plot = schema["components"]["schemas"]["PredictItem"]["properties"]["plot"]
    assert (plot["minLength"], plot["maxLength"], plot["pattern"]) == (1, 123, PLOT_PATTERN)
    assert schema["components"]["schemas"]["PredictRequest"]["properties"]["items"]["maxItems"] == 7
    query = next(p for p in schema["paths"]["/inference"]["get"]["parameters"] if p["name"] == "plot")
    assert (query["schema"]["minLength"], query["schema"]["maxLength"]) == (1, 123)


@open_schema.parametrize()
@EXAMPLES
def test_open_api_conforms_to_its_schema(case, open_app):
    case.call_and_validate(app=open_app)


@keyed_schema.parametrize()
@EXAMPLES
def test_keyed_api_conforms_to_its_schema(case, keyed_app):
    # With the key: the same answers; without it (Schemathesis also tries that): a 401.
    case.call_and_validate(app=keyed_app, headers={"x-api-key": API_KEY})


@pytest.mark.slow
@open_schema.parametrize()
@MANY_EXAMPLES
def test_open_api_conforms_to_its_schema_many_examples(case, open_app):
    case.call_and_validate(app=open_app)
