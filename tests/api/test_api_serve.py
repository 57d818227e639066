"""``moviegenre serve`` for real: a uvicorn subprocess on a free port, called over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from conftest import E1_PLOT, E2_PLOT
from moviegenre.api.app import max_url_bytes
from moviegenre.genres import PROBABILITY_KEYS
from moviegenre.predict import as_probability_record
from moviegenre.settings import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _moviegenre() -> list[str]:
    script = Path(sys.executable).with_name("moviegenre")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from moviegenre.cli import app; app()"]


@contextmanager
def serving(args: list[str], log_path: Path, cwd: Path | None = None, ready_within_s: float = 120) -> Iterator[str]:
    """Run ``moviegenre serve ARGS`` on a free port until /readyz is 200; yield the base URL."""
    port = _free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEGENRE_")}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*_moviegenre(), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=cwd, env=environment, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_within_s
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"serve was not ready within {ready_within_s} s:\n{log_path.read_text()}")
            time.sleep(0.25)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(small_model_dir, tmp_path_factory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serving(["--model", str(small_model_dir)], log) as base:
        yield base


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


def test_missing_model_directory_serves_not_ready(tmp_path):
    log = tmp_path / "serve.log"
    port = _free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEGENRE_")}
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [*_moviegenre(), "serve", "--port", str(port), "--model", str(tmp_path / "absent")],
            env=environment, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.25)
        assert response.status_code == 503
        assert "does not exist" in response.json()["error"]["message"]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.mark.slow
def test_serve_trains_the_default_model_when_there_is_none(dev_zip, tmp_path):
    with serving(["--data", str(dev_zip)], tmp_path / "serve.log", cwd=tmp_path, ready_within_s=1200) as base:
        model_json = json.loads((tmp_path / "models" / "default" / "model.json").read_text())
        assert model_json["kind"] == "linear" and model_json["training_data"]["rows"] == 6316
        assert httpx.get(base + "/v1/model").json()["id"] == model_json["id"]
        assert httpx.get(base + "/inference", params={"plot": E2_PLOT}).status_code == 200
