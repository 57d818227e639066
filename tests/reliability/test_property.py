"""Any Unicode text gets a valid answer or the documented error, never a crash or a 5xx.

Property tests (Hypothesis) for the three ways in: the library (``GenreModel.predict_proba``),
the CLI (``moviegenre predict``, argument and stdin) and the HTTP API (``GET /inference`` and
``POST /v1/predict``). Texts include the blank, emoji, control and NUL characters, right-to-left
scripts, texts at and just over the 20,000-character limit and lone surrogates where the
transport can carry them (a Python string, a JSON ``\\ud800`` escape, argv decoded with
``surrogateescape``; a URL and UTF-8 stdin cannot). The ``slow`` versions run more examples.
"""

from __future__ import annotations

import asyncio
import json
import math
import string
from contextlib import contextmanager
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import assert_json_error, assert_probabilities, settings_for
from typer.testing import CliRunner

from moviegenre import cli
from moviegenre.api.app import create_app
from moviegenre.core.errors import DataError
from moviegenre.core.genres import GENRES, PROBABILITY_KEYS
from moviegenre.model.genre_model import GenreModel, PipelineScorer, as_probability_record

MAX_PLOT_CHARS = 20_000
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Whitespace to Python, and U+FEFF, which is whitespace to JSON Schema (and the API).
WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2007\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
CONTROL = "".join(map(chr, range(0x00, 0x20))) + "\x7f\u200b\u200d\u200e\u200f\u202a\u202e\u2066\u2069\ufeff"
RTL = "هذا فيلم عن رعاة البقر في الغرب. זה סרט על חייל במלחמה. "
EMOJI = "🤠🐎🔫👻🧟‍♂️🚀👩‍❤️‍👨🏳️‍🌈🇺🇸🎬"

#: Any code point but the surrogates: what every transport can carry.
any_char = st.characters(codec="utf-8")
#: Any code point at all, lone surrogates included: what a Python string or JSON can carry.
any_char_or_surrogate = st.one_of(any_char, st.characters(categories=["Cs"]))

special = st.sampled_from(["", " ", "\x00", "\u200b", "...", "the of and", "1999", "ǅ", "ﷺ", "\U0010ffff"])


def texts(alphabet=any_char) -> st.SearchStrategy[str]:
    """Plots a user could send: random text, themed mixes, and lengths around the limit."""
    short = st.one_of(
        st.text(alphabet, max_size=200),
        st.text(st.sampled_from(WHITESPACE), max_size=40),  # blank after stripping
        st.text(st.sampled_from(CONTROL + string.ascii_letters + " "), max_size=80),
        st.text(st.sampled_from(RTL + EMOJI + "a cowboy ."), max_size=120),
        special,
    )
    long = st.builds(
        lambda seed, length: (seed * (length // max(1, len(seed)) + 1))[:length],
        st.text(alphabet, min_size=1, max_size=20),
        st.sampled_from([MAX_PLOT_CHARS - 1, MAX_PLOT_CHARS, MAX_PLOT_CHARS + 1]),
    )
    return st.one_of(short, short.map(lambda s: RTL + s + EMOJI), long)


def has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def expected_status(text: str) -> int:
    """The verdict on a plot at every door, as the API words it: 413 over the length limit,
    422 for a lone surrogate or for text with no letter or digit (blank, punctuation,
    zero-width characters), else 200."""
    if len(text) > MAX_PLOT_CHARS:
        return 413
    if has_surrogate(text) or not any(c.isalnum() for c in text):
        return 422
    return 200


# --- the library ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline_model(small_model):
    """Scores through the pipeline itself, as the kinds without a compiled form (seed, hybrid) do."""
    pipeline = small_model.pipeline
    return GenreModel(pipeline, small_model.metadata, scorer=PipelineScorer(pipeline))


def check_library(model, text: str) -> None:
    try:
        proba = model.predict_proba([{"plot": text, "title": text[:50]}])
    except DataError as exc:
        assert expected_status(text) != 200, f"refused a plot it should score: {exc}"
        assert "item 0: field" in str(exc)
        return
    assert expected_status(text) == 200, "a plot the contract refuses was scored"
    assert proba.shape == (1, len(GENRES))
    assert_probabilities(proba[0].tolist())


@FAST
@given(text=texts(any_char_or_surrogate))
def test_library_scores_any_text_or_refuses_it_with_a_data_error(small_model, text):
    check_library(small_model, text)


@settings(FAST, max_examples=30)
@given(text=texts())
def test_library_through_the_pipeline_scores_any_text(pipeline_model, small_model, text):
    check_library(pipeline_model, text)
    if expected_status(text) == 200:  # the compiled form gives the pipeline's probabilities
        np.testing.assert_allclose(small_model.predict_proba([text]), pipeline_model.predict_proba([text]), atol=1e-9)


@pytest.mark.slow
@SLOW
@given(text=texts(any_char_or_surrogate))
def test_library_any_text_many_examples(small_model, text):
    check_library(small_model, text)


@pytest.mark.parametrize("field", ["plot", "title"])
def test_library_through_the_pipeline_refuses_lone_surrogates(pipeline_model, field):
    item = {"plot": "a cowboy rides", field: "a cowboy \ud800 rides"}
    with pytest.raises(DataError, match=f"item 0: field '{field}' holds a lone surrogate"):
        pipeline_model.predict_proba([item])


# --- the CLI ----------------------------------------------------------------------------------

runner = CliRunner()


@contextmanager
def cli_with_loaded_model(small_model, small_model_dir):
    """``moviegenre predict`` with the session's model: loading takes seconds (it is tested in
    test_faulty_artifacts.py); everything after it is what runs here."""

    def load_model(directory):
        assert str(directory) == str(small_model_dir)
        return small_model

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli.artifact, "load_model", load_model)
        yield


def check_cli(small_model, small_model_dir, text: str, *, via_stdin: bool) -> None:
    args = ["predict", "--model", str(small_model_dir)]
    if via_stdin:
        result = runner.invoke(cli.app, [*args, "-"], input=text.encode("utf-8"))
    else:
        result = runner.invoke(cli.app, [*args, "--", text])  # "--": a plot may start with "-"
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    assert (result.exit_code == 0) == (expected_status(text) == 200), (result.output, text[:50])
    if result.exit_code == 2:
        assert expected_status(text) != 200, result.stderr
        assert result.stderr.startswith("error: ") and "Traceback" not in result.output
        assert result.stdout == ""
        return
    payload = json.loads(result.stdout)
    assert list(payload) == [*PROBABILITY_KEYS, "genres"]
    assert_probabilities({k: payload[k] for k in PROBABILITY_KEYS})
    assert payload["genres"] and set(payload["genres"]) <= set(GENRES)
    expected = as_probability_record(small_model.predict_proba([text])[0])
    assert [payload[k] for k in PROBABILITY_KEYS] == pytest.approx(list(expected.values()), abs=1e-12)


@FAST
@given(text=texts())
def test_cli_predict_from_stdin(small_model, small_model_dir, text):
    with cli_with_loaded_model(small_model, small_model_dir):
        check_cli(small_model, small_model_dir, text, via_stdin=True)


@settings(FAST, max_examples=40)
@given(text=texts(any_char_or_surrogate))
def test_cli_predict_from_an_argument(small_model, small_model_dir, text):
    # argv can carry lone surrogates: Python decodes undecodable bytes with surrogateescape.
    with cli_with_loaded_model(small_model, small_model_dir):
        check_cli(small_model, small_model_dir, text, via_stdin=False)


@pytest.mark.slow
@SLOW
@given(text=texts(any_char_or_surrogate), via_stdin=st.booleans())
def test_cli_predict_many_examples(small_model, small_model_dir, text, via_stdin):
    if via_stdin and has_surrogate(text):
        text = text.encode("utf-8", "replace").decode("utf-8")
    with cli_with_loaded_model(small_model, small_model_dir):
        check_cli(small_model, small_model_dir, text, via_stdin=via_stdin)


@pytest.mark.parametrize("raw", [b"caf\xe9 au lait", b"\xff\xfe\x00p\x00l\x00o\x00t", b"ab\xed\xa0\x80cd"])
def test_cli_stdin_that_is_not_utf8_is_a_one_line_error(small_model, small_model_dir, raw):
    with cli_with_loaded_model(small_model, small_model_dir):
        result = runner.invoke(cli.app, ["predict", "--model", str(small_model_dir), "-"], input=raw)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and "UTF-8" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


# --- the HTTP API -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(small_model):
    with TestClient(create_app(small_model, settings_for()), raise_server_exceptions=False) as test_client:
        yield test_client


def asgi_get(app, path: str, query: bytes, *, raw_path: bytes | None = b"") -> httpx.Response:
    """GET straight through the ASGI interface: httpx refuses URLs over 64 KiB, and a plot of
    20,000 four-byte characters is 240 KB percent-encoded (a real server takes it, see
    tests/api/test_api_serve.py). ``raw_path=None`` is what Mangum gives for a Lambda event."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode() if raw_path == b"" else raw_path,
             "query_string": query, "root_path": "", "headers": [(b"host", b"testserver")],
             "server": ("testserver", 80), "client": ("127.0.0.1", 1234)}  # fmt: skip
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]]
    return httpx.Response(start["status"], headers=headers, content=body)


def get_inference(client, text: str) -> httpx.Response:
    query = "plot=" + quote(text, safe="")
    if len(query) < 60_000:
        return client.get("/inference?" + query)
    return asgi_get(client.app, "/inference", query.encode("ascii"))


def check_inference(client, model, text: str) -> None:
    response = get_inference(client, text)
    assert response.status_code < 500, response.text
    status = expected_status(text)
    if status != 200:
        assert_json_error(response, status)
        return
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["clasification"]
    assert_probabilities(body["clasification"])
    expected = as_probability_record(model.predict_proba([text])[0])
    assert body["clasification"] == pytest.approx(expected, abs=1e-12)


def post_predict(client, items):
    # json.dumps escapes lone surrogates as \udXXX, as any JSON client may send them.
    return client.post(
        "/v1/predict", content=json.dumps({"items": items}), headers={"content-type": "application/json"}
    )


def check_predict(client, model, plots: list[str], title: str) -> None:
    items = [{"id": f"m{i}", "plot": plot, "title": title} for i, plot in enumerate(plots)]
    response = post_predict(client, items)
    assert response.status_code < 500, response.text
    statuses = [expected_status(plot) for plot in plots]
    if has_surrogate(title) or len(title) > 1000:
        statuses.append(422)
    refusals = [s for s in statuses if s != 200]
    if refusals:
        error = assert_json_error(response)
        assert response.status_code in refusals, (response.status_code, error)
        return
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["id"] for p in predictions] == [item["id"] for item in items]
    proba = np.array([list(p["probabilities"].values()) for p in predictions])
    for prediction, row in zip(predictions, proba, strict=True):
        assert_probabilities(prediction["probabilities"], GENRES)
        assert prediction["genres"] and set(prediction["genres"]) <= set(GENRES)
        assert all(math.isfinite(p) for p in row)
    np.testing.assert_allclose(proba, model.predict_proba(items), atol=1e-12)


@FAST
@given(text=texts())
def test_get_inference_any_text(client, small_model, text):
    check_inference(client, small_model, text)


@FAST
@given(plots=st.lists(texts(any_char_or_surrogate), min_size=1, max_size=4), title=texts(any_char_or_surrogate))
def test_post_predict_any_text(client, small_model, plots, title):
    check_predict(client, small_model, plots, title[:1200])


@pytest.mark.slow
@SLOW
@given(text=texts())
def test_get_inference_many_examples(client, small_model, text):
    check_inference(client, small_model, text)


@pytest.mark.slow
@SLOW
@given(plots=st.lists(texts(any_char_or_surrogate), min_size=1, max_size=8), title=texts(any_char_or_surrogate))
def test_post_predict_many_examples(client, small_model, plots, title):
    check_predict(client, small_model, plots, title[:1200])


@pytest.mark.parametrize(
    "query",
    ["%ED%A0%80", "%ED%B0%80abc", "%FF%FE", "caf%E9", "%C0%AF", "%F4%90%80%80", "%00", "%", "%zz", "a%2", "+++"],
)
def test_undecodable_bytes_in_the_url_never_cause_a_5xx(client, query):
    # Bytes that are not UTF-8 are a 400 invalid_utf8, as in a JSON body. A lone surrogate in its
    # UTF-8 form (ED A0 80) is read as one, as json.loads reads a body, and refused by the contract.
    response = client.get("/inference?plot=" + query)
    assert response.status_code in (200, 400, 422), response.text
    if response.status_code == 400:
        assert_json_error(response, 400, "invalid_utf8")
    elif response.status_code == 422:
        error = assert_json_error(response, 422, "invalid_request")
        assert "lone surrogate" in error["message"] or not query.startswith("%ED"), error
    else:
        assert_probabilities(response.json()["clasification"])


@pytest.mark.parametrize("field", ["plot", "title", "id"])
def test_a_lone_surrogate_in_json_is_a_422_naming_the_field(client, field):
    item = {"id": "m1", "plot": "a cowboy rides", "title": "West", field: "a \ud800 b"}
    error = assert_json_error(post_predict(client, [item]), 422, "invalid_request")
    assert f"items[0].{field}" in error["message"]


@pytest.mark.parametrize(
    ("args", "where"),
    [(["--", "ab\udcffcd"], "plot"), (["--title", "\udce9t\udce9", "--", "a plot"], "title")],
)
def test_cli_argv_bytes_that_are_not_utf8_are_a_one_line_error(small_model, small_model_dir, args, where):
    # What `moviegenre predict $'ab\xffcd'` passes: Python decodes argv with surrogateescape.
    with cli_with_loaded_model(small_model, small_model_dir):
        result = runner.invoke(cli.app, ["predict", "--model", str(small_model_dir), *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: field '{where}' holds a lone surrogate"), result.stderr
    assert "not valid Unicode; send valid UTF-8 text" in " ".join(result.stderr.split())
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


@pytest.mark.parametrize("path", ["/\ud800", "/v1/\udcff/predict", "/inference\udc80"])
def test_a_path_holding_a_lone_surrogate_is_a_json_404(small_model, path):
    # Mangum hands the app a Lambda event's path with raw_path None; a JSON event can hold a
    # lone surrogate. The URL-length check once failed to encode it (a plain-text 500).
    response = asgi_get(create_app(small_model, settings_for()), path, b"", raw_path=None)
    assert_json_error(response, 404, "not_found")
