"""Hostile requests and model directories at the doors: the same verdict at every door, checked
model directories, no 500 after ready, and no work after a 504.

- Bytes: bytes that are not UTF-8 get 400 ``invalid_utf8`` from ``GET /inference`` and from a
  ``POST /v1/predict`` body alike; a lone surrogate gets the input contract's reason at every
  door, however it was sent.
- Model directories: a symbolic link that leads out of the directory is refused at load, by name;
  one that stays inside is read like any file; a file that is not a regular one is refused
  without being opened.
- Explanations: a linear model explains from ``fast.npz`` when ``model.skops`` cannot be
  deserialised; a model whose explainer fails is not ready (rather than ready, then 500); the
  explanation budget is checked before any work; an explanation past its deadline stops, and the
  process is idle again within a second of the 504.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from reliability_support import assert_json_error, settings_for

from conftest import E1_PLOT, E2_PLOT, replace_model_file
from moviegenre.api.app import create_app
from moviegenre.core.errors import InvalidItem, ModelError
from moviegenre.core.items import check_plot
from moviegenre.core.layout import Layout
from moviegenre.kinds.registry import get_kind, register
from moviegenre.model.artifact import load_model
from moviegenre.model.explain import NotExplainable, has_explainer
from moviegenre.model.genre_model import GenreModel

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client(small_model):
    with TestClient(create_app(small_model, settings_for())) as test_client:
        yield test_client


# --- bytes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "/inference?plot=%FF", None),
        ("GET", "/inference?plot=a%20cowboy%20%C3", None),  # a character cut short
        ("GET", "/inference?explain=false&plot=%C0%AFetc", None),  # an overlong encoding
        ("POST", "/v1/predict", b'{"items": [{"id": "1", "plot": "a cowboy \xff rides"}]}'),
        ("POST", "/v1/predict", b'{"items": [{"id": "1", "plot": "a cowboy \xc3"}]}'),
    ],
    ids=["get-ff", "get-cut-short", "get-overlong", "post-ff", "post-cut-short"],
)
def test_bytes_that_are_not_utf8_get_one_code_at_both_doors(client, method, url, body):
    response = client.request(method, url, content=body, headers=JSON if body else {})
    error = assert_json_error(response, 400, "invalid_utf8")
    assert "is not valid UTF-8 (byte 0x" in error["message"], error


def test_a_lone_surrogate_gets_one_reason_at_every_door(client):
    plot = "a cowboy \ud800 rides"
    with pytest.raises(InvalidItem) as library:
        check_plot(plot)
    reason = library.value.reason
    assert reason.startswith("holds a lone surrogate (U+D800)"), reason
    answers = {
        "GET, encoded in UTF-8": client.get("/inference?plot=a%20cowboy%20%ED%A0%80%20rides"),
        "POST, encoded in UTF-8": client.post(
            "/v1/predict", content='{"items": [{"id": "1", "plot": "a cowboy \ud800 rides"}]}'.encode(
                "utf-8", "surrogatepass"), headers=JSON),  # fmt: skip
        "POST, escaped": client.post("/v1/predict", content=b'{"items": [{"id": "1", "plot": "a cowboy \\ud800 rides"}]}',
                                     headers=JSON),  # fmt: skip
    }
    for door, response in answers.items():
        message = assert_json_error(response, 422, "invalid_request")["message"]
        assert message.endswith(reason), (door, message)


def test_utf8_in_the_query_string_is_read_as_sent(client):
    plot = "Un cowboy solitaire arrive à cheval dans une ville de l'Ouest — «duel» au soleil"
    got = client.get("/inference", params={"plot": plot})
    assert got.status_code == 200, got.text
    posted = client.post("/v1/predict", json={"items": [{"id": "1", "plot": plot}]}).json()
    assert list(got.json()["clasification"].values()) == list(posted["predictions"][0]["probabilities"].values())


def test_a_body_nested_too_deeply_is_malformed_json(client):
    body = b'{"items": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    error = assert_json_error(client.post("/v1/predict", content=body, headers=JSON), 400, "malformed_json")
    assert "nested too deeply" in error["message"]


# --- model directories ----------------------------------------------------------------------------


def _link_out(relative: str):
    """Move ``relative`` out of the model directory and leave a symbolic link to it: the content,
    and so the checksum, is unchanged; only the link betrays it."""

    def damage(directory: Path) -> Path:
        outside = directory.parent / "elsewhere" / relative
        outside.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(directory / relative, outside)
        (directory / relative).symlink_to(outside)
        return directory / relative

    return damage


def _encoder_folder_out(directory: Path) -> Path:
    outside = directory.parent / "elsewhere-encoder"
    outside.mkdir()
    (outside / "model.onnx").write_bytes(b"not read")
    (directory / Layout.ENCODER).symlink_to(outside, target_is_directory=True)
    return directory / Layout.ENCODER


def _file_in_encoder_out(directory: Path) -> Path:
    (directory / Layout.ENCODER).mkdir()
    (directory / Layout.ENCODER / "tokenizer.json").symlink_to("/etc/hostname")
    return directory / Layout.ENCODER / "tokenizer.json"


LINKS_OUT = {
    "model-skops": _link_out(Layout.MODEL),
    "fast-npz": _link_out(Layout.FAST),
    "model-json": _link_out(Layout.CARD),
    "encoder-folder": _encoder_folder_out,
    "file-in-encoder": _file_in_encoder_out,
}


@pytest.mark.parametrize("name", list(LINKS_OUT))
def test_a_symbolic_link_out_of_the_model_directory_is_refused_by_name(model_copy, name):
    link = LINKS_OUT[name](model_copy)
    with pytest.raises(ModelError, match="leads out of the model directory") as refused:
        load_model(model_copy)
    assert str(link) in str(refused.value)
    with TestClient(create_app(settings=settings_for(model_copy))) as app:
        error = assert_json_error(app.get("/readyz"), 503, "model_not_ready")
        assert str(link) in error["message"]


def test_links_that_stay_inside_the_directory_are_read_like_any_file(model_copy, small_model):
    (model_copy / "store").mkdir()
    shutil.move(model_copy / Layout.MODEL, model_copy / "store" / Layout.MODEL)
    (model_copy / Layout.MODEL).symlink_to(Path("store") / Layout.MODEL)
    linked = model_copy.parent / "linked-model"
    linked.symlink_to(model_copy, target_is_directory=True)  # the directory itself may be a link
    assert (load_model(linked).predict_proba([E1_PLOT]) == small_model.predict_proba([E1_PLOT])).all()


def test_a_loop_of_links_is_refused(model_copy):
    (model_copy / Layout.FAST).unlink()
    (model_copy / Layout.FAST).symlink_to(Layout.FAST)
    with pytest.raises(ModelError, match=r"fast\.npz (is a symbolic link that cannot be followed|is missing)"):
        load_model(model_copy)


def test_a_file_that_is_not_regular_is_refused_without_being_read(model_copy):
    (model_copy / Layout.FAST).unlink()
    os.mkfifo(model_copy / Layout.FAST)  # reading it would wait for a writer forever
    with pytest.raises(ModelError, match=r"fast\.npz is not a regular file"):
        load_model(model_copy)


# --- explanations after ready -----------------------------------------------------------------


def _undeserialisable(path: Path) -> None:
    """``model.skops`` with its schema (so its types pass the check) but arrays that are garbage."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data if name == "schema.json" else b"garbage")


def test_a_linear_model_whose_pipeline_cannot_be_read_still_explains(model_copy):
    replace_model_file(model_copy, _undeserialisable, forge_fast_path=True)
    model = load_model(model_copy)
    with pytest.raises(ModelError, match=r"model\.skops could not be loaded"):
        model.pipeline  # noqa: B018 - reading the property deserialises
    with TestClient(create_app(settings=settings_for(model_copy))) as app:
        assert app.get("/readyz").status_code == 200
        got = app.get("/inference", params={"plot": E1_PLOT, "explain": "true"})
        assert got.status_code == 200 and len(got.json()["explanation"]) == 3, got.text
        body = {"items": [{"id": "1", "plot": E2_PLOT}], "explain": True}
        got = app.post("/v1/predict", json=body)
        assert got.status_code == 200 and got.json()["predictions"][0]["explanation"], got.text


@pytest.fixture
def linear_explainer_replaced():
    """Registers the linear kind with another explainer for the test's length."""
    linear = get_kind("linear")
    yield lambda explainer: register(dataclasses.replace(linear, explainer=explainer))
    register(linear)


def test_a_model_whose_explainer_fails_is_not_ready_rather_than_ready_then_500(small_model_dir, linear_explainer_replaced):
    def broken(model):
        raise RuntimeError("the explainer's data is damaged")

    linear_explainer_replaced(broken)
    with TestClient(create_app(settings=settings_for(small_model_dir))) as app:
        error = assert_json_error(app.get("/readyz"), 503, "model_not_ready")
        assert "could not explain an example: the explainer's data is damaged" in error["message"]


def test_a_model_that_cannot_explain_says_so_from_the_first_request_and_builds_once(
    small_model_dir, linear_explainer_replaced
):
    builds = []

    def refuses(model):
        builds.append(model)
        raise NotExplainable("its compiled form holds no vocabulary")

    linear_explainer_replaced(refuses)
    with TestClient(create_app(settings=settings_for(small_model_dir))) as app:
        assert app.get("/readyz").status_code == 200
        for _ in range(3):
            response = app.get("/inference", params={"plot": E1_PLOT, "explain": "true"})
            error = assert_json_error(response, 422, "not_explainable")
            assert error["message"].endswith("cannot be explained: its compiled form holds no vocabulary"), error
        assert app.get("/inference", params={"plot": E1_PLOT}).status_code == 200
    assert len(builds) == 1


# --- the explanation budget and the deadline ---------------------------------------------------


def test_the_explanation_budget_is_checked_before_any_work(small_model):
    fresh = GenreModel(None, small_model.metadata, scorer=small_model.scorer)
    settings = settings_for(max_explained_items=10)
    with TestClient(create_app(fresh, settings)) as app:
        assert app.get("/v1/limits").json()["max_explained_items"] == 10
        items = [{"id": str(i), "plot": E1_PLOT} for i in range(11)]
        response = app.post("/v1/predict", json={"items": items, "explain": True, "explain_top": 1})
        error = assert_json_error(response, 413, "too_many_explanations")
        assert "11 items to explain in one request; the limit is 10" in error["message"], error
        assert not has_explainer(fresh)  # refused before anything was built or explained
        assert app.post("/v1/predict", json={"items": items[:10], "explain": True}).status_code == 200
        assert app.post("/v1/predict", json={"items": items}).status_code == 200  # scoring alone is not counted


def test_an_explanation_past_its_deadline_stops_and_the_process_is_idle_within_a_second(small_model):
    plot = (E1_PLOT + " " + E2_PLOT + " ") * 60
    items = [{"id": str(i), "plot": plot[:5_000] + f" {i}"} for i in range(256)]  # 3 s of explaining
    settings = settings_for(request_timeout_s=0.5, max_explained_items=256)
    with TestClient(create_app(small_model, settings)) as app:
        started = time.perf_counter()
        response = app.post("/v1/predict", json={"items": items, "explain": True, "explain_top": 24})
        answered = time.perf_counter()
        assert_json_error(response, 504, "timeout")
        time.sleep(max(0.0, 1.0 - (time.perf_counter() - answered)))
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        time.sleep(0.5)
        busy = (time.process_time() - cpu_before) / (time.perf_counter() - wall_before)
        assert busy < 0.2, f"the process still used {busy:.0%} of a core 1 s after the 504"
        assert answered - started < 5
