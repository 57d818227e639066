"""Helpers shared by the reliability suites: answers that must hold, and percentiles.

A real server comes from :func:`tests.support.servers.serve_in_background`.

Not a ``conftest.py``: a second one would shadow the root ``tests/conftest.py`` for
``from conftest import ...``. The root fixtures (``small_model_dir``, ``small_model``) are used
directly by the tests.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import httpx

from moviegenre.core.genres import GENRES, PROBABILITY_KEYS
from moviegenre.core.settings import Settings

#: Error codes the API documents for client errors, by status.
CLIENT_ERROR_CODES = {
    400: {"malformed_json", "invalid_utf8"},
    401: {"unauthorized"},
    404: {"not_found"},
    405: {"method_not_allowed"},
    413: {"plot_too_long", "too_many_items", "too_many_explanations", "payload_too_large"},
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


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, nearest rank."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def assert_one_line_error(result, pattern: str) -> None:
    """A CLI run (typer's CliRunner) that failed the way a user's mistake should: exit 2, one
    ``error:`` line matching ``pattern`` on stderr, nothing on stdout, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    message = " ".join(result.stderr.split())  # rich may wrap a long line
    assert message.startswith("error: "), result.stderr
    assert re.search(pattern, message), message
    assert "Traceback" not in result.output and result.stdout == ""
