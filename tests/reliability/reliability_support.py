"""Helpers shared by the reliability suites: answers that must hold, a real server, its memory.

Not a ``conftest.py``: a second one would shadow the root ``tests/conftest.py`` for
``from conftest import ...``. The root fixtures (``small_model_dir``, ``small_model``) are used
directly by the tests.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

from moviegenre.genres import GENRES, PROBABILITY_KEYS
from moviegenre.settings import Settings

#: Error codes the API documents for client errors, by status.
CLIENT_ERROR_CODES = {
    400: {"malformed_json", "bad_request"},
    401: {"unauthorized"},
    404: {"not_found"},
    405: {"method_not_allowed"},
    413: {"plot_too_long", "too_many_items", "payload_too_large"},
    414: {"uri_too_long"},
    415: {"unsupported_media_type"},
    422: {"invalid_request"},
}


def settings_for(model_dir: Path | str = "unused", **overrides) -> Settings:
    """Settings with no API key unless asked for, so a key in the environment cannot leak in."""
    return Settings(model=Path(model_dir), **{"api_key": None, **overrides})


def assert_probabilities(values, keys=PROBABILITY_KEYS) -> None:
    """24 finite probabilities in [0, 1], under the expected keys in genre order."""
    if isinstance(values, Mapping):
        assert list(values) == list(keys), list(values)
        values = list(values.values())
    values = list(values)
    assert len(values) == len(GENRES)
    assert all(isinstance(p, float) and math.isfinite(p) and 0.0 <= p <= 1.0 for p in values), values


def assert_json_error(response: httpx.Response, status: int | None = None, code: str | None = None) -> dict:
    """The documented error: ``{"error": {"code", "message"}}`` as JSON, a known 4xx, no trace."""
    if status is not None:
        assert response.status_code == status, response.text[:500]
    assert response.status_code in CLIENT_ERROR_CODES or response.status_code in (503, 504), response.text[:500]
    assert response.headers["content-type"] == "application/json", response.headers
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    error = body["error"]
    if code is not None:
        assert error["code"] == code, error
    elif response.status_code in CLIENT_ERROR_CODES:
        assert error["code"] in CLIENT_ERROR_CODES[response.status_code], error
    assert error["message"] and "Traceback" not in response.text
    return error


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def moviegenre_command() -> list[str]:
    script = Path(sys.executable).with_name("moviegenre")
    return [str(script)] if script.exists() else [sys.executable, "-m", "moviegenre"]


class Server:
    """A ``moviegenre serve`` process on a loopback port."""

    def __init__(self, process: subprocess.Popen, base: str, log: Path):
        self.process = process
        self.base = base
        self.log = log

    def rss_bytes(self) -> int:
        """Resident memory of the server process (one worker: the process itself)."""
        return psutil.Process(self.process.pid).memory_info().rss

    def alive(self) -> bool:
        return self.process.poll() is None


@contextmanager
def serving(
    args: list[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    *,
    wait_for: int = 200,
    within_s: float = 180,
) -> Iterator[Server]:
    """Run ``moviegenre serve ARGS`` on a free loopback port until ``/readyz`` answers
    ``wait_for``; the environment holds no ``MOVIEGENRE_*`` variable but those in ``env``."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEGENRE_")}
    environment.update(env or {})
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [*moviegenre_command(), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            env=environment, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + within_s
        while True:
            if not server.alive():
                raise AssertionError(f"serve exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(server.base + "/readyz", timeout=5).status_code == wait_for:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"/readyz never answered {wait_for} within {within_s} s:\n{log.read_text()}")
            time.sleep(0.25)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, nearest rank."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]
