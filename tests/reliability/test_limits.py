"""Request limits: enforced, and set by ``MOVIEGENRE_*`` environment variables.

Each limit is read from the environment the way ``moviegenre serve`` and the Lambda handler
read it (``Settings()``), and each test sends the same request under two values of the setting:
accepted under one, refused under the other with the documented error. A real ``moviegenre
serve`` with limits from the environment is exercised here for the body limit (what the client
sees depends on the server) and in test_load.py.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import anyio
import pytest
from fastapi.testclient import TestClient
from reliability_support import assert_json_error
from tests.support.servers import serve_in_background
from typer.testing import CliRunner

from moviegenre import cli
from moviegenre.api.app import create_app, max_url_bytes
from moviegenre.api.middleware import RequestLimitsMiddleware
from moviegenre.core.examples import EXAMPLE_PLOTS
from moviegenre.core.settings import Settings, get_settings

PLOT = (EXAMPLE_PLOTS["E1"] + " ") * 2  # 600-odd characters of a real plot


@pytest.fixture
def app_with_env(small_model, monkeypatch):
    """An app built from ``MOVIEGENRE_*`` variables (and no others from the caller's shell)."""
    clients = []

    def build(**variables: str | int | float) -> TestClient:
        with monkeypatch.context() as env:
            for name in list(Settings.model_fields):
                env.delenv(f"MOVIEGENRE_{name.upper()}", raising=False)
            for name, value in variables.items():
                env.setenv(f"MOVIEGENRE_{name.upper()}", str(value))
            settings = Settings()
        client = TestClient(create_app(small_model, settings))
        clients.append(client.__enter__())
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


def predict_body(n_items: int, plot: str = PLOT) -> bytes:
    return json.dumps({"items": [{"id": f"m{i}", "plot": plot} for i in range(n_items)]}).encode()


def post(client: TestClient, body: bytes):
    return client.post("/v1/predict", content=body, headers={"content-type": "application/json"})


def test_max_plot_chars(app_with_env):
    plot = PLOT[:300]
    strict, loose = app_with_env(max_plot_chars=299), app_with_env(max_plot_chars=300)
    for client, limit in ((strict, 299), (loose, 300)):
        assert client.get("/v1/limits").json()["max_plot_chars"] == limit
    error = assert_json_error(strict.get("/inference", params={"plot": plot}), 413, "plot_too_long")
    assert "300 characters; the limit is 299" in error["message"]
    assert_json_error(post(strict, predict_body(2, plot)), 413, "plot_too_long")
    assert loose.get("/inference", params={"plot": plot}).status_code == 200
    assert post(loose, predict_body(2, plot)).status_code == 200


def test_the_url_limit_follows_max_plot_chars(app_with_env):
    small, default = app_with_env(max_plot_chars=100), app_with_env()
    target = "/inference?plot=" + "a" * 6_000
    assert len(target) > max_url_bytes(Settings(max_plot_chars=100))
    assert_json_error(small.get(target), 414, "uri_too_long")
    assert default.get(target).status_code == 200


def test_max_items(app_with_env):
    body = predict_body(5)
    strict, loose = app_with_env(max_items=4), app_with_env(max_items=5)
    error = assert_json_error(post(strict, body), 413, "too_many_items")
    assert "5 items in one request; the limit is 4" in error["message"]
    assert len(post(loose, body).json()["predictions"]) == 5
    assert loose.get("/v1/limits").json()["max_items"] == 5


def test_max_body_bytes(app_with_env):
    body = predict_body(3)
    strict, loose = app_with_env(max_body_bytes=len(body) - 1), app_with_env(max_body_bytes=len(body))
    error = assert_json_error(post(strict, body), 413, "payload_too_large")
    assert f"larger than {len(body) - 1:,} bytes" in error["message"]
    assert post(loose, body).status_code == 200

    def chunks():  # no content-length: counted as it arrives
        yield body[:100]
        yield body[100:]

    response = strict.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert_json_error(response, 413, "payload_too_large")


def test_request_timeout_s(app_with_env):
    # A real model on real work: 200 plots of 15,000 characters take far longer than 1 ms.
    body = predict_body(200, (PLOT * 30)[:15_000])
    strict, loose = app_with_env(request_timeout_s=0.001), app_with_env(request_timeout_s=120)
    error = assert_json_error(post(strict, body), 504, "timeout")
    assert "longer than 0.001 s" in error["message"]
    assert strict.get("/healthz").status_code == 200  # the server is still answering
    response = post(loose, body)
    assert response.status_code == 200 and len(response.json()["predictions"]) == 200


def test_api_key(app_with_env):
    open_app, keyed = app_with_env(), app_with_env(api_key="s3cret-from-env")
    assert open_app.get("/v1/limits").status_code == 200
    assert_json_error(keyed.get("/v1/limits"), 401, "unauthorized")
    assert_json_error(keyed.get("/v1/limits", headers={"x-api-key": "wrong"}), 401, "unauthorized")
    assert keyed.get("/v1/limits", headers={"x-api-key": "s3cret-from-env"}).status_code == 200
    assert keyed.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MOVIEGENRE_MAX_ITEMS", "0", "MOVIEGENRE_MAX_ITEMS='0': Input should be greater than 0"),
        ("MOVIEGENRE_MAX_PLOT_CHARS", "many", "MOVIEGENRE_MAX_PLOT_CHARS='many': Input should be a valid integer"),
        ("MOVIEGENRE_MAX_BODY_BYTES", "-5", "MOVIEGENRE_MAX_BODY_BYTES='-5': Input should be greater than 0"),
        ("MOVIEGENRE_REQUEST_TIMEOUT_S", "soon", "MOVIEGENRE_REQUEST_TIMEOUT_S='soon': Input should be a valid number"),
    ],
)
def test_a_bad_setting_stops_serve_with_one_line_naming_it(small_model_dir, monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli.app, ["serve", "--model", str(small_model_dir), "--port", "9"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr.startswith("error: bad setting: ") and message in " ".join(result.stderr.split())
    assert "Traceback" not in result.output


# --- bodies over the limit, on a real server --------------------------------------------------

TEN_MB = b"x" * 10_000_000


def urllib_post(url: str, data, headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    """POST as Python's urllib does it: the whole body is sent before the answer is read (no
    ``Expect: 100-continue``), so a server that closes on an unread body resets it instead."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.load(error)


def in_chunks(data: bytes, size: int = 65_536):
    """A body with no Content-Length: urllib sends it chunked."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_a_10_mb_body_gets_the_json_413_not_a_connection_reset(small_model_server):
    status, headers, body = urllib_post(small_model_server.base_url + "/v1/predict", TEN_MB)
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert "larger than 8,000,000 bytes" in body["error"]["message"]
    assert headers["Connection"] == "close"


def test_a_large_body_without_the_api_key_gets_the_json_401_not_a_connection_reset(small_model_dir):
    with serve_in_background(small_model_dir, env={"MOVIEGENRE_API_KEY": "k3y"}) as server:
        status, headers, body = urllib_post(server.base_url + "/v1/predict", TEN_MB[:5_000_000])
        assert status == 401 and body["error"]["code"] == "unauthorized"
        assert headers["Connection"] == "close"
        status, _, body = urllib_post(server.base_url + "/v1/predict", predict_body(2), {"x-api-key": "k3y"})
        assert status == 200 and len(body["predictions"]) == 2


def test_max_body_bytes_from_the_environment_on_a_real_server(small_model_dir):
    with serve_in_background(small_model_dir, env={"MOVIEGENRE_MAX_BODY_BYTES": "100000"}) as server:
        url = server.base_url + "/v1/predict"
        for data in (TEN_MB, in_chunks(TEN_MB)):  # declared, then counted as it arrives
            status, _, body = urllib_post(url, data)
            assert status == 413 and body["error"]["code"] == "payload_too_large", body
            assert "larger than 100,000 bytes" in body["error"]["message"]
        status, _, body = urllib_post(url, predict_body(3))
        assert status == 200 and len(body["predictions"]) == 3


def test_the_rest_of_a_refused_body_is_read_within_bounds():
    """Read and thrown away so that the client reads the 413; but not forever, not from a client
    waiting for "100 Continue", and not when more is declared than the server would read."""
    reads = 0

    async def endless():
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 1_000, "more_body": True}

    async def silent():
        await anyio.sleep_forever()

    def refuse(receive, declared: int = 5_000, *headers: tuple[bytes, bytes]) -> list[dict]:
        nonlocal reads
        reads, sent = 0, []

        async def send(message):
            sent.append(message)

        limits = RequestLimitsMiddleware(
            None, max_body_bytes=1_000, max_url_bytes=1_000, linger_max_bytes=10_000, linger_max_s=0.3
        )
        scope = {"type": "http", "method": "POST", "path": "/v1/predict", "raw_path": b"/v1/predict",
                 "query_string": b"", "headers": [(b"content-length", str(declared).encode()), *headers]}  # fmt: skip
        anyio.run(limits, scope, receive, send)
        assert (b"connection", b"close") in sent[0]["headers"] and sent[0]["status"] == 413
        assert json.loads(sent[1]["body"])["error"]["code"] == "payload_too_large"
        assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
        return sent

    refuse(endless)
    assert reads == 11  # stops once past 10,000 bytes
    started = time.monotonic()
    refuse(silent)
    assert 0.25 < time.monotonic() - started < 2
    refuse(endless, 5_000, (b"expect", b"100-continue"))
    assert reads == 0
    refuse(endless, 20_000)  # reading 10,000 of the 19,000 left would not spare the reset
    assert reads == 0
