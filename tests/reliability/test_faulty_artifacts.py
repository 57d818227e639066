"""Faulty model directories: each is refused with a clear error, and the server stays up.

For every kind of damage (altered, truncated, missing or invalid ``model.json``, a foreign or
hostile type inside ``model.skops``, a model made by another scikit-learn...) the library
refuses the directory with a :class:`ModelError` that says what is wrong, and an app built on
it answers ``/healthz`` 200 but ``/readyz`` and the prediction routes 503 with that reason,
rather than crash and be restarted in a loop. One case runs against a real ``moviegenre serve``.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import skops.io
from fastapi.testclient import TestClient
from reliability_support import assert_json_error, settings_for
from tests.support.needs import need
from tests.support.servers import serve_in_background

from conftest import Evil, editing_model_json, flip_a_byte, replace_model_file
from moviegenre.api.app import create_app
from moviegenre.core.errors import ModelError
from moviegenre.core.examples import EXAMPLE_PLOTS
from moviegenre.core.genres import GENRES
from moviegenre.core.layout import Layout
from moviegenre.model.artifact import load_model

MODEL_FILE, METADATA_FILE, FAST_FILE = Layout.MODEL, Layout.CARD, Layout.FAST


def _write_meta(directory: Path, meta) -> None:
    (directory / METADATA_FILE).write_text(json.dumps(meta))


def _edit_meta(**changes) -> Callable[[Path], None]:
    def edit(directory: Path) -> None:
        with editing_model_json(directory) as meta:
            meta.update(changes)

    return edit


def _replace_model_file(payload: Callable[[Path], None], *, forge_fast_path: bool = False) -> Callable[[Path], None]:
    """:func:`conftest.replace_model_file` as a damage of the directory alone, for ``CASES``."""
    return lambda directory: replace_model_file(directory, payload, forge_fast_path=forge_fast_path)


def _flip_a_byte(name: str) -> Callable[[Path], None]:
    return lambda directory: flip_a_byte(directory / name)


def _truncate(directory: Path) -> None:
    path = directory / MODEL_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _other_sklearn(directory: Path) -> None:
    with editing_model_json(directory) as meta:
        meta["versions"]["scikit-learn"] = "0.24.2"


def _without_fast_form(directory: Path) -> None:
    """The compiled form gone, and the card consistent with that: only the form is missing."""
    (directory / FAST_FILE).unlink()
    with editing_model_json(directory) as meta:
        del meta["fast_path"]


def _edit_text(old: str, new: Callable[[str], str]) -> Callable[[Path], None]:
    """Replace the first ``"old": value`` of model.json's text with what ``new`` makes of it."""

    def edit(directory: Path) -> None:
        path = directory / METADATA_FILE
        text = path.read_text()
        start = text.index(f'"{old}": ') + len(old) + 4
        end = min(text.index(c, start) for c in ",}\n" if c in text[start:])
        path.write_text(text[:start] + new(text[start:end]) + text[end:])

    return edit


def _not_a_skops_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "a zip, but not a skops file")


#: name -> (damage done to a copy of a good model directory, what the error must say)
CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "flipped-byte": (_flip_a_byte(MODEL_FILE), r"model\.skops has been altered or truncated"),
    "truncated": (_truncate, r"model\.skops has been altered or truncated"),
    "model-file-missing": (lambda d: (d / MODEL_FILE).unlink(), r"model\.skops is missing"),
    "model-json-missing": (lambda d: (d / METADATA_FILE).unlink(), r"has no model\.json"),
    "model-json-not-json": (lambda d: (d / METADATA_FILE).write_text("{not json"), "is not valid JSON"),
    "model-json-binary": (lambda d: (d / METADATA_FILE).write_bytes(b"\xff\xfe\x00garbage"), "is not valid JSON"),
    "model-json-a-list": (lambda d: (d / METADATA_FILE).write_text("[1, 2]"), "must hold a JSON object"),
    "model-json-lacks-fields": (lambda d: _write_meta(d, {"id": "x"}), r"lacks field\(s\)"),
    "format-from-the-future": (_edit_meta(format_version=99), "format_version 99"),
    "format-from-the-past": (_edit_meta(format_version=1), r"format_version 1; .*moviegenre train --kind linear"),
    "thresholds-a-list": (_edit_meta(thresholds=[0.5] * 24), "field 'thresholds' is malformed"),
    "thresholds-a-string": (_edit_meta(thresholds="0.5"), "field 'thresholds' is malformed"),
    "huge-integer": (_edit_text("rows", lambda _: "9" * 5_000), r"field 'training_data\.rows' is malformed"),
    "deep-nesting": (_edit_text("C", lambda _: "[" * 100_000 + "]" * 100_000), "field 'params' is nested"),
    "labels-reordered": (_edit_meta(labels=[{"name": g} for g in reversed(GENRES)]), "'calibration.labels' must name"),
    "labels-too-few": (_edit_meta(labels=[{"name": "Western"}]), "field 'labels' is malformed"),
    "artifact-field-malformed": (_edit_meta(artifact="model.skops"), "field 'artifact' is malformed"),
    "other-scikit-learn": (_other_sklearn, "made with scikit-learn 0.24.2"),
    "unknown-type": (
        _replace_model_file(lambda p: skops.io.dump({"pipeline": Evil()}, p)),
        r"not on moviegenre's trusted list.*Evil",
    ),
    "names-os-system": (
        _replace_model_file(lambda p: skops.io.dump({"run": os.system}, p)),
        r"not on moviegenre's trusted list.*system",
    ),
    "a-pickle": (
        _replace_model_file(lambda p: p.write_bytes(pickle.dumps({"x": 1}))),
        "not a readable skops file",
    ),
    "empty-model-file": (_replace_model_file(lambda p: p.write_bytes(b"")), "not a readable skops file"),
    "zip-but-not-skops": (_replace_model_file(_not_a_skops_zip), "not a readable skops file"),
    "fast-path-altered": (_flip_a_byte(FAST_FILE), r"fast\.npz has been altered or truncated"),
    "fast-path-missing": (lambda d: (d / FAST_FILE).unlink(), r"fast\.npz is missing"),
    "fast-form-removed": (_without_fast_form, r"has no fast\.npz, and a 'linear' model is only served through"),
    "fast-form-of-another-model": (
        _replace_model_file(lambda p: skops.io.dump({"another": "model"}, p)),
        r"fast\.npz does not belong to this model\.skops",
    ),
}
NEEDS_FAST_FILE = {"fast-path-altered", "fast-path-missing", "fast-form-removed", "fast-form-of-another-model"}


@pytest.fixture
def damaged(request, model_copy) -> tuple[Path, str]:
    name = request.param
    need(name not in NEEDS_FAST_FILE or (model_copy / FAST_FILE).exists(), f"the small model has no {FAST_FILE}")
    damage, reason = CASES[name]
    damage(model_copy)
    return model_copy, reason


@pytest.mark.parametrize("damaged", list(CASES), indirect=True)
def test_the_library_refuses_it_with_a_clear_error(damaged):
    directory, reason = damaged
    with pytest.raises(ModelError, match=reason) as refused:
        load_model(directory)
    assert str(directory) in str(refused.value)  # says which model


@pytest.mark.parametrize("damaged", list(CASES), indirect=True)
def test_the_app_stays_up_and_reports_not_ready(damaged):
    directory, reason = damaged
    with TestClient(create_app(settings=settings_for(directory)), raise_server_exceptions=False) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert_json_error(client.get("/readyz"), 503, "model_not_ready")
        assert_reason(client.get("/readyz"), reason)
        assert_json_error(client.get("/inference", params={"plot": EXAMPLE_PLOTS["E2"]}), 503, "model_not_ready")
        items = {"items": [{"id": "e2", "plot": EXAMPLE_PLOTS["E2"]}]}
        assert_json_error(client.post("/v1/predict", json=items), 503, "model_not_ready")
        assert_json_error(client.get("/v1/model"), 503, "model_not_ready")
        assert client.get("/metrics").status_code == 200
        assert client.get("/v1/limits").status_code == 200


def assert_reason(response: httpx.Response, reason: str) -> None:
    message = response.json()["error"]["message"]
    assert re.search(reason, message), message


@pytest.mark.parametrize("damaged", ["unknown-type", "other-scikit-learn"], indirect=True)
def test_lambda_style_loading_records_the_failure_instead_of_raising(damaged):
    directory, reason = damaged
    app = create_app(settings=settings_for(directory), load_now=True)  # what the Lambda handler does
    assert app.state.model_state.model is None
    with TestClient(app) as client:
        assert_reason(client.get("/readyz"), reason)


def test_a_foreign_type_is_refused_at_load_even_beside_a_consistent_fast_path(small_model_dir, tmp_path):
    need((small_model_dir / FAST_FILE).exists(), f"the small model has no {FAST_FILE}")
    directory = Path(shutil.copytree(small_model_dir, tmp_path / "model"))
    _replace_model_file(lambda p: skops.io.dump({"pipeline": Evil()}, p), forge_fast_path=True)(directory)
    with pytest.raises(ModelError, match="not on moviegenre's trusted list"):
        load_model(directory)


# --- a real server --------------------------------------------------------------------------


def test_serve_with_a_hostile_model_stays_up_not_ready(model_copy, tmp_path):
    replace_model_file(model_copy, lambda p: skops.io.dump({"run": os.system}, p))
    with serve_in_background(model_copy, ready_status=503, log=tmp_path / "serve.log") as server:
        pid = server.process.pid
        for _ in range(3):  # still the same process, still up, still saying why
            response = httpx.get(server.base_url + "/readyz")
            assert_json_error(response, 503, "model_not_ready")
            assert_reason(response, "not on moviegenre's trusted list")
            assert httpx.get(server.base_url + "/healthz").status_code == 200
            time.sleep(0.5)
        assert_json_error(httpx.get(server.base_url + "/inference", params={"plot": "a plot"}), 503, "model_not_ready")
        assert server.alive() and server.process.pid == pid
    log = server.output()
    assert "not on moviegenre's trusted list" in log
    assert "Traceback" not in log  # a refusal is logged as one line, not as a crash


@pytest.mark.slow
def test_serve_with_workers_and_a_bad_model_does_not_crash_loop(model_copy, tmp_path):
    _other_sklearn(model_copy)
    with serve_in_background(model_copy, args=["--workers", "2"], ready_status=503, timeout_s=240,
                             log=tmp_path / "serve.log") as server:  # fmt: skip
        for _ in range(10):
            response = httpx.get(server.base_url + "/readyz")
            assert response.status_code == 503 and "scikit-learn 0.24.2" in response.text
            time.sleep(0.3)
        assert server.alive()
    assert server.output().count("Started server process") <= 3  # the supervisor and two workers
