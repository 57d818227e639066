"""Model directories: verified on load; altered, truncated or foreign files are refused."""

from __future__ import annotations

import pickle
import zipfile

import pytest
import skops.io

from conftest import Evil, editing_model_json, flip_a_byte, replace_model_file
from moviegenre.artifact import METADATA_FILE, MODEL_FILE, load_model, read_metadata
from moviegenre.data import sha256_of
from moviegenre.errors import ModelError


def test_model_json_describes_the_model(small_model_dir):
    meta = read_metadata(small_model_dir)
    assert meta["kind"] == "linear"
    assert meta["artifact"]["sha256"] == sha256_of(small_model_dir / MODEL_FILE)
    assert {"scikit-learn", "numpy", "skops", "python"} <= set(meta["versions"])
    assert meta["params"]["C"] > 0


def test_one_flipped_byte_is_refused(model_copy):
    flip_a_byte(model_copy / MODEL_FILE)
    with pytest.raises(ModelError, match="altered or truncated"):
        load_model(model_copy)


def test_truncated_file_is_refused(model_copy):
    path = model_copy / MODEL_FILE
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelError, match="altered or truncated"):
        load_model(model_copy)


def test_missing_or_invalid_model_json(model_copy, tmp_path):
    (model_copy / METADATA_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_model(model_copy)
    (model_copy / METADATA_FILE).unlink()
    with pytest.raises(ModelError, match="not a moviegenre model directory"):
        load_model(model_copy)
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nowhere")


def test_model_json_without_required_fields(model_copy):
    with editing_model_json(model_copy) as meta:
        del meta["artifact"]
    with pytest.raises(ModelError, match=r"lacks field\(s\) \['artifact'\]"):
        load_model(model_copy)


def test_model_from_another_scikit_learn_is_refused(model_copy):
    with editing_model_json(model_copy) as meta:
        meta["versions"]["scikit-learn"] = "0.24.2"
    with pytest.raises(ModelError, match="made with scikit-learn 0.24.2"):
        load_model(model_copy)


def test_unknown_type_inside_the_file_is_refused_even_with_a_matching_checksum(model_copy):
    replace_model_file(model_copy, lambda path: skops.io.dump({"pipeline": Evil()}, path))
    with pytest.raises(ModelError, match="not on moviegenre's trusted list.*Evil"):
        load_model(model_copy)


def test_a_pickle_is_never_loaded(model_copy):
    replace_model_file(model_copy, lambda path: path.write_bytes(pickle.dumps({"x": 1})))
    with pytest.raises(ModelError, match="not a readable skops file"):
        load_model(model_copy)


def test_artifact_is_a_compressed_skops_zip(small_model_dir):
    with zipfile.ZipFile(small_model_dir / MODEL_FILE) as archive:
        assert "schema.json" in archive.namelist()
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in archive.infolist())
