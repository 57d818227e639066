"""README's Errors table against the codes the API defines (``ERROR_CODES``), both ways; and
the JSON answers to requests that Starlette would otherwise answer in plain text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from moviegenre.api.app import create_app
from moviegenre.api.errors import ERROR_CODES, error_body, error_response
from moviegenre.core.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_error_rows() -> dict[str, int | None]:
    """``code: status`` for each row of README's Errors table (``None`` for "other")."""
    section = README.read_text(encoding="utf-8").split("### Errors\n", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| (\d{3}|other) \| `(\w+)` \|", section, flags=re.M)
    assert len(rows) == len({code for _, code in rows}), "a code is listed twice"
    return {code: None if status == "other" else int(status) for status, code in rows}


def test_the_readme_error_table_is_the_list_of_codes_the_api_defines():
    assert readme_error_rows() == ERROR_CODES


def test_an_error_code_that_is_not_defined_is_refused():
    assert error_body(400, "bad_request", "m") == {"error": {"code": "bad_request", "message": "m"}}
    with pytest.raises(ValueError, match="'no_such_code' with status 400 is not in ERROR_CODES"):
        error_response(400, "no_such_code", "m")
    with pytest.raises(ValueError, match="'timeout' with status 500"):
        error_body(500, "timeout", "m")  # a code only goes with its own status


@pytest.mark.parametrize("path", ["/static/app.js", "/docs-static/swagger-ui.css"])
@pytest.mark.parametrize("header", ["bytes=999999999-", "bytes=5-1", "lines=1-2"])
def test_a_range_the_static_files_cannot_serve_gets_the_whole_file(path, header, tmp_path):
    """Starlette answers these with a plain-text 400 or 416; the files are served whole instead."""
    app = create_app(settings=Settings(model=tmp_path / "none", api_key=None))
    with TestClient(app) as client:
        whole = client.get(path)
        ranged = client.get(path, headers={"range": header})
    assert whole.status_code == 200 and len(whole.content) > 100
    assert ranged.status_code == 200 and ranged.content == whole.content
