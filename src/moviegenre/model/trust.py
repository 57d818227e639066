"""Which types a model file may name, checked before anything in it is deserialised.

``model.skops`` stores data and type names, never code; loading refuses a file that names a
type outside moviegenre's explicit trust: the containers and numbers skops stores as data,
scikit-learn's classes, and the types each model kind lists
(:attr:`~moviegenre.kinds.registry.ModelKind.trusted_types`). :func:`check_types` reads the
file's schema with the standard library alone, so that a model served through its compiled
form is checked without importing skops or scikit-learn; :func:`skops_trusted` is skops' own
check, done again when the pipeline is deserialised.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

from moviegenre.core.errors import ModelError

#: Types outside skops' default trust that our pipelines legitimately contain.
_BASE_TRUSTED_TYPES = frozenset(
    {
        "sklearn.multiclass._ConstantPredictor",
        "sklearn.utils._bunch.Bunch",
        "moviegenre.kinds.text.decade_of",
        "moviegenre.model.vocabulary.Vocabulary",
    }
)


def trusted_types() -> set[str]:
    """Every type beyond skops' default trust that a model file may name."""
    from moviegenre.kinds.registry import all_trusted_types

    return set(_BASE_TRUSTED_TYPES) | all_trusted_types()


def check_types(model_path: Path) -> set[str]:
    """Every type ``model.skops`` names, after refusing the file if one is not trusted.

    This reads the file's schema with the standard library alone, so that a model served
    through its compiled form is checked at load without importing skops and scikit-learn
    (seconds of a cold start). What is trusted: the containers and numbers skops stores as
    data, scikit-learn's classes, and the functions and classes the model kinds list
    (:func:`trusted_types`). skops checks the types again, its own way, when the pipeline is
    deserialised (:func:`skops_trusted`).
    """
    try:
        with zipfile.ZipFile(model_path) as archive:
            named = _named_types(archive.read("schema.json"))
    except (OSError, KeyError, ValueError, RecursionError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{model_path} is not a readable skops file ({type(exc).__name__}: {exc})") from None
    trusted = trusted_types()
    untrusted = sorted({name for name, loader in named if not _is_trusted(name, loader, trusted)})
    if untrusted:
        raise ModelError(
            f"{model_path} names types that are not on moviegenre's trusted list: {untrusted}. "
            "Refusing to load it: only models made by moviegenre can be loaded"
        )
    return {name for name, _ in named}


#: What skops stores as plain data, by the loader it names.
_DATA_TYPES = {
    "DictNode": {"builtins.dict"},
    "ListNode": {"builtins.list"},
    "TupleNode": {"builtins.tuple"},
    "SetNode": {"builtins.set"},
    "SliceNode": {"builtins.slice"},
    "BytesNode": {"builtins.bytes"},
    "BytearrayNode": {"builtins.bytearray"},
    "JsonNode": {f"builtins.{name}" for name in ("str", "int", "float", "bool", "NoneType", "list", "dict")},
    "NdArrayNode": {"numpy.ndarray"},
    "MaskedArrayNode": {"numpy.ma.core.MaskedArray"},
    "TypeNode": {"builtins.str", "builtins.int", "builtins.float", "builtins.bool", "builtins.object"},
}
_NUMPY_SCALARS = frozenset(
    f"numpy.{name}"
    for name in ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                 "float16", "float32", "float64", "str_", "object_", "dtype")
)  # fmt: skip


def _named_types(schema_json: bytes) -> set[tuple[str, str]]:
    """``(module.class, loader)`` of every node of a skops schema: read off the text when it is
    laid out as skops writes it (:func:`_scanned_types`), else from the parsed JSON."""
    return _scanned_types(schema_json) or _parsed_types(schema_json)


#: A node's three keys as skops writes them: in this order, next to each other, plain strings.
_NODE_KEYS = re.compile(
    rb'"__class__"\s*:\s*"([^"\\]*)"\s*,\s*"__module__"\s*:\s*"([^"\\]*)"\s*,\s*"__loader__"\s*:\s*"([^"\\]*)"'
)
#: A printable ASCII character written as an escape, which skops never writes: it could spell a
#: key such as ``"\u005f_class__"`` that the scan would not see.
_ESCAPED_ASCII = re.compile(rb"\\u00[2-7][0-9a-fA-F]")


def _scanned_types(schema_json: bytes) -> set[tuple[str, str]] | None:
    """The node types, found by regular expressions over the text (twice as fast as parsing the
    JSON), or ``None`` when the text is not laid out exactly as skops writes it. A schema is
    well under a megabyte since vocabularies are stored as arrays
    (:mod:`moviegenre.model.vocabulary`): milliseconds. A model directory of format 2 held a
    node per vocabulary term, 88 MB of schema and half a second of every cold start.

    Every node is an object whose first keys are ``__class__``, ``__module__`` and
    ``__loader__``. If each of those key strings occurs exactly as often as the three occur
    together, every one of them belongs to a captured node: a key written in another order,
    twice in one object, or spelled with an escape would leave one over. Then the parsed JSON is
    walked instead, so an unusual file is checked as thoroughly, only more slowly.
    """
    nodes = _NODE_KEYS.findall(schema_json)
    counts = {schema_json.count(b'"%s"' % key) for key in (b"__class__", b"__module__", b"__loader__")}
    if counts != {len(nodes)} or _ESCAPED_ASCII.search(schema_json):
        return None
    return {(f"{module.decode()}.{name.decode()}", loader.decode()) for name, module, loader in set(nodes)}


def _parsed_types(schema_json: bytes) -> set[tuple[str, str]]:
    """``(module.class, loader)`` of every node, collected while the JSON is parsed."""
    named: set[tuple[str, str]] = set()

    def collect(node: dict[str, Any]) -> dict[str, Any]:
        loader = node.get("__loader__")
        if loader is not None:
            named.add((f"{node.get('__module__')}.{node.get('__class__')}", str(loader)))
        return node

    json.loads(schema_json, object_hook=collect)
    return named


def _is_trusted(name: str, loader: str, trusted: set[str]) -> bool:
    if name in _DATA_TYPES.get(loader, ()) or name in trusted:
        return True
    if loader in ("TypeNode", "ObjectNode", "NdArrayNode") and name in _NUMPY_SCALARS:
        return True
    if loader == "SparseMatrixNode":
        return name.startswith("scipy.sparse.")
    # skops trusts scikit-learn's estimators; a class of scikit-learn (never a function or
    # method, which could be anything) is checked exactly by skops when it is deserialised.
    return loader in ("ObjectNode", "DictNode") and name.startswith("sklearn.")


def skops_trusted(model_path: Path) -> list[str]:
    """The types skops does not trust by default that ``model_path`` names, after refusing the
    file if one of them is not on moviegenre's list (:func:`trusted_types`): what to pass to
    ``skops.io.load(..., trusted=...)``."""
    import skops.io

    try:
        untrusted_to_skops = set(skops.io.get_untrusted_types(file=model_path))
    except Exception as exc:  # skops raises many types for a damaged file
        raise ModelError(f"{model_path} is not a readable skops file ({type(exc).__name__}: {exc})") from None
    unexpected = sorted(untrusted_to_skops - trusted_types())
    if unexpected:
        raise ModelError(f"{model_path} names types that are not on moviegenre's trusted list: {unexpected}")
    return sorted(untrusted_to_skops)


__all__ = ["check_types", "skops_trusted", "trusted_types"]
