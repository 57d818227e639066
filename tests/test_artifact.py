"""Model directories: verified on load; altered, truncated or foreign files are refused."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest
import skops.io

from moviegenre.artifact import METADATA_FILE, MODEL_FILE, load_model, read_metadata
from moviegenre.data import sha256_of
from moviegenre.errors import ModelError


@pytest.fixture
def model_copy(small_model_dir, tmp_path):
    return shutil.copytree(small_model_dir, tmp_path / "model")


def rewrite_meta(directory, **changes):
    meta = json.loads((directory / METADATA_FILE).read_text())
    meta.update(changes)
    (directory / METADATA_FILE).write_text(json.dumps(meta))


def test_model_json_describes_the_model(small_model_dir):
    meta = read_metadata(small_model_dir)
    assert meta["kind"] == "linear"
    assert meta["artifact"]["sha256"] == sha256_of(small_model_dir / MODEL_FILE)
    assert {"scikit-learn", "numpy", "skops", "python"} <= set(meta["versions"])
    assert meta["params"]["C"] > 0


def test_one_flipped_byte_is_refused(model_copy):
    path = model_copy / MODEL_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
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
    meta = json.loads((model_copy / METADATA_FILE).read_text())
    del meta["artifact"]
    (model_copy / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"lacks field\(s\) \['artifact'\]"):
        load_model(model_copy)


def test_model_from_another_scikit_learn_is_refused(model_copy):
    meta = json.loads((model_copy / METADATA_FILE).read_text())
    meta["versions"]["scikit-learn"] = "0.24.2"
    (model_copy / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="made with scikit-learn 0.24.2"):
        load_model(model_copy)


class Evil:
    """Stands for an arbitrary class a hostile model file could name."""


def test_unknown_type_inside_the_file_is_refused_even_with_a_matching_checksum(model_copy):
    path = model_copy / MODEL_FILE
    skops.io.dump({"pipeline": Evil()}, path)
    rewrite_meta(model_copy, artifact={"file": MODEL_FILE, "sha256": sha256_of(path), "bytes": 0})
    with pytest.raises(ModelError, match="not on moviegenre's trusted list.*Evil"):
        load_model(model_copy)


def test_a_pickle_is_never_loaded(model_copy):
    import pickle

    path = model_copy / MODEL_FILE
    path.write_bytes(pickle.dumps({"x": 1}))
    rewrite_meta(model_copy, artifact={"file": MODEL_FILE, "sha256": sha256_of(path), "bytes": 0})
    with pytest.raises(ModelError, match="not a readable skops file"):
        load_model(model_copy)


def test_artifact_is_a_compressed_skops_zip(small_model_dir):
    with zipfile.ZipFile(small_model_dir / MODEL_FILE) as archive:
        assert "schema.json" in archive.namelist()
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in archive.infolist())
