"""Model directories: verified on load; altered, truncated or foreign files are refused."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
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
    assert card.kind == "linear" and card.format_version == 4
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


# --- vocabularies as arrays: a small schema, checked fast, as strictly ------------------------


def edit_schema(path, edit) -> None:
    """Rewrite the skops file ``path`` with ``edit`` applied to its schema.json text."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members["schema.json"] = edit(members["schema.json"].decode()).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_vocabularies_are_stored_as_arrays_and_read_back_as_the_same_dicts(small_model_dir, small_model):
    """The schema holds no node per term (a real linear model's was 88 MB of them, half a
    second of every cold start to check), and the pipeline read back has the dicts, in order."""
    from moviegenre.kinds.graph import estimators

    raw = zipfile.ZipFile(small_model_dir / MODEL_FILE).read("schema.json")
    vocabularies = [part.vocabulary_ for part in estimators(small_model.pipeline) if hasattr(part, "vocabulary_")]
    assert len(vocabularies) == 3 and all(type(v) is dict for v in vocabularies)
    assert sum(map(len, vocabularies)) > 10_000
    assert len(raw) < 1_000_000 and raw.count(b'"Vocabulary"') == 3
    assert ("moviegenre.model.vocabulary.Vocabulary", "ObjectNode") in _scanned_types(raw)
    term = max(vocabularies[0], key=len)
    assert f'"{term}"'.encode() not in raw


@pytest.mark.parametrize(
    "terms", [{}, {"": 0}, {"a b": 1, "é ü": 0, "🎬": 2, "x\x00": 3, "\ud800": 4}], ids=["empty", "empty-term", "odd"]
)
def test_a_vocabulary_round_trips_exactly(terms):
    from moviegenre.model.vocabulary import Vocabulary

    again = Vocabulary.__new__(Vocabulary)
    again.__setstate__(Vocabulary(terms).__getstate__())
    assert again.mapping == terms and list(again.mapping) == list(terms)
    assert all(type(column) is int for column in again.mapping.values())


def test_only_a_dict_of_text_to_columns_is_stored_as_arrays():
    """Anything else under ``vocabulary_`` is left to skops, as it is, and every dict is put back."""
    from sklearn.feature_extraction.text import CountVectorizer

    from moviegenre.model.vocabulary import Vocabulary, vocabularies_as_arrays

    parts = [CountVectorizer(), CountVectorizer(), CountVectorizer()]
    vocabularies = [{"a": 0, "b": np.int64(1)}, {("a", "b"): 0}, {"a": True}]
    for part, vocabulary in zip(parts, vocabularies, strict=True):
        part.vocabulary_ = vocabulary
    with pytest.raises(RuntimeError), vocabularies_as_arrays(parts):
        assert [type(part.vocabulary_) for part in parts] == [Vocabulary, dict, dict]
        raise RuntimeError
    assert all(part.vocabulary_ is vocabulary for part, vocabulary in zip(parts, vocabularies, strict=True))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s: {**s, "lengths": s["lengths"] + 1}, "add up"),
        (lambda s: {**s, "lengths": -s["lengths"]}, "add up"),
        (lambda s: {**s, "columns": s["columns"][:1]}, "add up"),
        (lambda s: {**s, "utf8": s["utf8"].astype(object)}, "utf8 must be"),
        (lambda s: {**s, "lengths": s["lengths"].reshape(1, -1)}, "lengths must be"),
        (lambda s: {"utf8": s["utf8"]}, "must hold the arrays"),
        (lambda s: {**s, "utf8": np.frombuffer(b"ab\xff", dtype=np.uint8), "lengths": np.array([1, 2])}, "decode"),
        (lambda s: {**s, "utf8": np.frombuffer(b"aa", dtype=np.uint8), "lengths": np.array([1, 1])}, "twice"),
    ],
    ids=["long", "negative", "short", "object", "2d", "missing", "not-utf8", "twice"],
)  # fmt: skip
def test_a_malformed_vocabulary_is_refused(change, reason):
    from moviegenre.model.vocabulary import Vocabulary

    state = Vocabulary({"a": 0, "b": 1}).__getstate__()
    with pytest.raises(ValueError, match=reason):
        Vocabulary.__new__(Vocabulary).__setstate__(change(state))


def test_a_malformed_vocabulary_in_the_file_is_one_model_error(model_copy):
    """A file whose vocabulary arrays do not make a vocabulary loads (its compiled form scores)
    but its pipeline is refused in one line when asked for."""
    with zipfile.ZipFile(model_copy / MODEL_FILE) as archive:
        schema = json.loads(archive.read("schema.json"))
    names = []

    def lengths_files(node):
        if isinstance(node, dict):
            if node.get("__class__") == "Vocabulary":
                names.append(node["content"]["content"]["lengths"]["file"])
            for value in node.values():
                lengths_files(value)
        elif isinstance(node, list):
            for value in node:
                lengths_files(value)

    lengths_files(schema)
    assert len(names) == 3

    def write(path):
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: archive.read(info) for info in archive.infolist()}
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                if name == names[0]:
                    with archive.open(name, "w") as member:
                        np.save(member, np.array([10**9], dtype=np.int64), allow_pickle=False)
                else:
                    archive.writestr(name, data)

    replace_model_file(model_copy, write, forge_fast_path=True)
    model = load_model(model_copy)
    assert model.predict(["a man goes to prison"])
    with pytest.raises(ModelError, match="could not be loaded.*vocabulary"):
        _ = model.pipeline


def test_a_type_outside_the_trusted_list_in_place_of_a_vocabulary_is_refused(model_copy):
    """The check reads the (now small) schema whole: a node naming any other class where a
    vocabulary was, with checksums forged to match, is refused at load."""
    swap = ('"__class__": "Vocabulary",\n', '"__class__": "Popen",\n')

    def write(path):
        edit_schema(path, lambda text: text.replace(*swap, 1).replace(
            '"moviegenre.model.vocabulary"', '"subprocess"', 1))  # fmt: skip

    replace_model_file(model_copy, write, forge_fast_path=True)
    raw = zipfile.ZipFile(model_copy / MODEL_FILE).read("schema.json")
    assert b'"subprocess"' in raw and raw.count(b'"Vocabulary"') == 2
    with pytest.raises(ModelError, match=r"not on moviegenre's trusted list: \['subprocess.Popen'\]"):
        load_model(model_copy)
