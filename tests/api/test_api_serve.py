"""``moviegenre serve`` for real: a uvicorn subprocess on a free port, called over HTTP.

Most tests share the session's server of the small model (``small_model_server``)."""

from __future__ import annotations

import json
import socket
from urllib.parse import quote

import httpx
import pytest
from tests.support.servers import ServerStartError, serve_in_background

from conftest import E1_PLOT, E2_PLOT
from moviegenre.api.app import max_url_bytes
from moviegenre.api.server import uvicorn_options
from moviegenre.core.genres import PROBABILITY_KEYS
from moviegenre.core.settings import Settings
from moviegenre.model.genre_model import as_probability_record


@pytest.fixture
def server(small_model_server) -> str:
    return small_model_server.base_url


def raw_get(base: str, target: str) -> tuple[int, dict]:
    """GET with a hand-written request line: httpx refuses URLs over 64 KiB itself."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    return status, json.loads(body)


def test_inference_and_health_over_http(server, small_model):
    assert httpx.get(server + "/healthz").json() == {"status": "ok"}
    response = httpx.get(server + "/inference", params={"plot": E1_PLOT})
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["clasification"] and list(body["clasification"]) == list(PROBABILITY_KEYS)
    expected = as_probability_record(small_model.predict_proba([E1_PLOT])[0])
    assert body["clasification"] == pytest.approx(expected, abs=1e-12)


def test_predict_metrics_and_docs_over_http(server):
    items = [{"id": "e1", "plot": E1_PLOT}, {"id": "e2", "plot": E2_PLOT}]
    response = httpx.post(server + "/v1/predict", json={"items": items})
    assert [p["id"] for p in response.json()["predictions"]] == ["e1", "e2"]
    assert 'moviegenre_predictions_total{route="/v1/predict"}' in httpx.get(server + "/metrics").text
    assert httpx.get(server + "/docs").status_code == 200


def test_plots_up_to_the_limit_fit_in_a_get_url(server):
    # 20,000 characters is over uvicorn's default 16 KiB request-head limit; serve raises it.
    plot = "é" * 20_000
    status, body = raw_get(server, "/inference?plot=" + quote(plot))
    assert status == 200 and list(body["clasification"]) == list(PROBABILITY_KEYS)
    status, body = raw_get(server, "/inference?plot=" + "a" * 20_001)
    assert status == 413 and body["error"]["code"] == "plot_too_long"


def test_overlong_url_gets_the_apps_json_414(server):
    status, body = raw_get(server, "/inference?plot=" + "a" * (max_url_bytes(Settings()) + 1))
    assert status == 414 and body["error"]["code"] == "uri_too_long"


def raw_request(base: str, request: bytes) -> tuple[int, dict]:
    """Send ``request`` as it is, and read the JSON answer."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_what_uvicorn_answers_itself_is_json_too(server):
    """Requests that never reach the app: uvicorn's own answers have the app's JSON shape."""
    bound = uvicorn_options(Settings())["h11_max_incomplete_event_size"]
    # Far over the bound, so that the server sees it incomplete and over (a head that arrives
    # whole in one read is parsed, and reaches the app's own 414); the client gets to read the
    # answer, not a connection reset, since the server reads the rest of the head first.
    status, body = raw_request(server, b"GET /inference?plot=" + b"a" * (8 * bound)
                               + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 414 and body["error"]["code"] == "uri_too_long"
    assert f"longer than {bound:,} bytes" in body["error"]["message"]
    status, body = raw_request(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (8 * bound)
                               + b"\r\n\r\n")
    assert status == 431 and body["error"]["code"] == "headers_too_large"
    status, body = raw_request(server, b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n")
    assert (status, body["error"]) == (400, {"code": "bad_request", "message": "the request is not valid HTTP/1.1"})


def test_missing_model_directory_serves_not_ready(tmp_path):
    with serve_in_background(tmp_path / "absent", ready_status=503) as server:
        response = httpx.get(server.base_url + "/readyz")
        assert response.status_code == 503
        assert "does not exist" in response.json()["error"]["message"]
        assert httpx.get(server.base_url + "/healthz").status_code == 200


@pytest.mark.slow
def test_serve_trains_the_default_model_when_there_is_none(dev_movies, tmp_path):
    """`make serve` on a fresh machine: no model yet, so serve trains the default kind first
    (on 600 movies here, to keep it short: the default kind distils its encoder, minutes)."""
    from moviegenre.core.genres import GENRES
    from moviegenre.kinds.registry import DEFAULT_KIND

    sample = dev_movies.frame.iloc[:600].assign(
        genres=["|".join(g for g, on in zip(GENRES, row, strict=True) if on) for row in dev_movies.labels[:600]]
    )
    sample.to_csv(tmp_path / "train.csv")
    with serve_in_background(None, args=["--data", str(tmp_path / "train.csv")], cwd=tmp_path,
                             timeout_s=1200) as server:  # fmt: skip
        base = server.base_url
        model_json = json.loads((tmp_path / "models" / "default" / "model.json").read_text())
        assert model_json["kind"] == DEFAULT_KIND and model_json["training_data"]["rows"] == 600
        assert httpx.get(base + "/v1/model").json()["id"] == model_json["id"]
        assert httpx.get(base + "/inference", params={"plot": E2_PLOT}).status_code == 200


def test_a_server_that_exits_is_reported_with_its_output(small_model_dir):
    with pytest.raises(ServerStartError, match=r"(?s)exited with 2.*Invalid value for '--workers'"):
        with serve_in_background(small_model_dir, args=["--workers", "0"]):
            pass


def test_a_server_that_never_gets_ready_is_reported_with_why(tmp_path):
    # 20 s: time enough for the server to start and answer on a busy machine.
    with pytest.raises(ServerStartError, match=r"(?s)within 20 s \(last answered 503: .*does not exist.*its output"):
        with serve_in_background(tmp_path / "absent", timeout_s=20):
            pass
