"""Model directories: verified on load; altered, truncated or foreign files are refused."""

from __future__ import annotations

import json
import pickle
import zipfile

import pytest
import skops.io

from conftest import Evil, editing_model_json, flip_a_byte, replace_model_file
from moviegenre.core.errors import ModelError
from moviegenre.core.files import sha256_of
from moviegenre.core.layout import Layout
from moviegenre.model.artifact import load_model
from moviegenre.model.card import read_card
from moviegenre.model.trust import _parsed_types, _scanned_types, check_types

MODEL_FILE, METADATA_FILE = Layout.MODEL, Layout.CARD


def test_model_json_describes_the_model(small_model_dir):
    card = read_card(small_model_dir)
    assert card.kind == "linear" and card.format_version == 2
    assert card.artifact.file == MODEL_FILE
    assert card.artifact.sha256 == sha256_of(small_model_dir / MODEL_FILE)
    assert {"scikit-learn", "numpy", "skops", "python"} <= set(card.versions)
    assert card.params["C"] > 0
    assert card.fast_path.form == "linear" and card.fast_path.model_sha256 == card.artifact.sha256
    assert card.to_json() == json.loads((small_model_dir / METADATA_FILE).read_text())  # read as written


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


# --- the type check at load: the fast scan and the parse agree --------------------------------

NODE = '{{"__class__": "{name}", "__module__": "{module}", "__loader__": "{loader}", "__id__": 1}}'
TRUSTED = NODE.format(name="decade_of", module="moviegenre.kinds.text", loader="FunctionNode")


def schema_file(tmp_path, schema_text: str):
    path = tmp_path / "model.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", schema_text)
    return path


def test_the_scan_finds_what_parsing_finds_in_real_models(small_model_dir):
    raw = zipfile.ZipFile(small_model_dir / MODEL_FILE).read("schema.json")
    scanned = _scanned_types(raw)
    assert scanned is not None and scanned == _parsed_types(raw)
    assert ("moviegenre.kinds.text.decade_of", "FunctionNode") in scanned


@pytest.mark.parametrize(
    "hostile",
    [
        # keys in another order than skops writes them
        '{"__loader__": "FunctionNode", "__module__": "os", "__class__": "system", "__id__": 2}',
        # a trusted node's keys, then the same keys again: JSON keeps the last ones
        TRUSTED[:-1] + ', "__class__": "system", "__module__": "os"}',
        # a key spelled with an escape
        '{"\\u005f_class__": "system", "__module__": "os", "__loader__": "FunctionNode", "__class__": "system"}',
    ],
    ids=["reordered", "duplicate-keys", "escaped-key"],
)
def test_a_node_hidden_from_the_scan_is_still_found(tmp_path, hostile):
    text = '{"content": [' + TRUSTED + ", " + hostile + "]}"
    assert _scanned_types(text.encode()) is None  # not laid out as skops writes: parsed instead
    with pytest.raises(ModelError, match=r"not on moviegenre's trusted list: \['os.system'\]"):
        check_types(schema_file(tmp_path, text))


@pytest.mark.parametrize(
    ("name", "module", "loader"),
    [("system", "os", "FunctionNode"), ("eval", "builtins", "FunctionNode"),
     ("check_array", "sklearn.utils", "FunctionNode"), ("Popen", "subprocess", "ObjectNode")],
)  # fmt: skip
def test_untrusted_functions_and_classes_are_refused(tmp_path, name, module, loader):
    text = '{"content": [' + TRUSTED + ", " + NODE.format(name=name, module=module, loader=loader) + "]}"
    with pytest.raises(ModelError, match="not on moviegenre's trusted list"):
        check_types(schema_file(tmp_path, text))
