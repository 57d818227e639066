"""Model directories: the pipeline serialised with skops plus ``model.json``.

A model directory holds:

* ``model.skops``: the fitted pipeline, in skops' format, which stores data and type names,
  never code. Loading lists the types the file names and refuses any that are not on our
  explicit trusted list, so a hostile file cannot run code.
* ``model.json``: what the model is (kind, id, genres, thresholds, the calibration of its
  probabilities as plain numbers), how it was made (library versions, training data sha256
  and row count, parameters), how well it did (cross-validated metrics) and the sha256 of
  ``model.skops``, verified on every load.
* ``fast.npz`` (linear and static models): the pipeline compiled for inference
  (:mod:`moviegenre.fast`), plain arrays and JSON text (a static model's tokenizer too) read
  with ``allow_pickle=False``. Its sha256, and the sha256 of the ``model.skops`` it was
  compiled from, are in ``model.json`` (field ``fast_path``). When it is there,
  :func:`load_model` scores with it and deserialises ``model.skops`` (types checked as always)
  only when the pipeline itself is asked for: a cold start in a fraction of a second.
* files beside the model that its pipeline reads (a hybrid's sentence encoder, exported to
  ONNX, under ``encoder/``): each listed in ``model.json`` (field ``files``) by relative path
  with its sha256 and size, all checked on every load; the pipeline's parts that read them
  (``model_files()``/``use_model_directory()``) are pointed at the directory they were loaded
  from, so a copied or moved directory works as it is.

Directories are written to a temporary sibling and renamed into place, so a crash never leaves
a half-written model that looks complete.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import zipfile
from functools import partial
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

# scikit-learn and skops are imported where they are used: loading a linear model through its
# compiled form needs neither, and importing them takes seconds.
from .calibration import Calibration
from .errors import ModelError
from .fast import (
    BUNDLE_FILE,
    BUNDLE_FORMATS,
    FastLinear,
    FastStatic,
    NotCompilable,
    compile_pipeline,
    load_bundle,
    save_bundle,
    verify,
)
from .files import atomic_directory, sha256_of
from .genres import GENRES
from .predict import GenreModel, PipelineScorer

MODEL_FILE = "model.skops"
METADATA_FILE = "model.json"
FORMAT_VERSION = 1
#: model.json's field describing ``fast.npz``.
FAST_PATH_FIELD = "fast_path"
#: model.json's field holding the per-genre calibration (absent: served uncalibrated).
CALIBRATION_FIELD = "calibration"
#: model.json's field listing the files beside the model that its pipeline reads (a hybrid's
#: sentence encoder): relative path, sha256 and size of each.
FILES_FIELD = "files"

logger = logging.getLogger(__name__)

#: Types outside skops' default trust that our pipelines legitimately contain.
_BASE_TRUSTED_TYPES = frozenset(
    {
        "sklearn.multiclass._ConstantPredictor",
        "sklearn.utils._bunch.Bunch",
        "moviegenre.text.decade_of",
    }
)

_REQUIRED_KEYS = ("format_version", "id", "kind", "genres", "artifact", "versions")


def trusted_types() -> set[str]:
    from .models import all_trusted_types

    return set(_BASE_TRUSTED_TYPES) | all_trusted_types()


def library_versions() -> dict[str, str]:
    names = ["moviegenre", "scikit-learn", "numpy", "scipy", "skops", "pandas"]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def save_model(pipeline: Any, metadata: dict[str, Any], directory: str | Path) -> dict[str, Any]:
    """Write ``pipeline`` and ``metadata`` (completed with the artifact checksum and library
    versions) as a model directory, atomically replacing any model already there.

    A pipeline that :mod:`moviegenre.fast` can compile (the linear and static kinds) also gets its
    compiled form, ``fast.npz``, checked against the pipeline before it is written."""
    import skops.io

    directory = Path(directory)
    _refuse_to_replace_a_foreign_directory(directory)
    with atomic_directory(directory) as staging:
        model_path = staging / MODEL_FILE
        skops.io.dump(pipeline, model_path, compression=zipfile.ZIP_DEFLATED)
        metadata = {
            "format_version": FORMAT_VERSION,
            **{key: value for key, value in metadata.items() if key not in (FAST_PATH_FIELD, FILES_FIELD)},
            "versions": library_versions(),
            "artifact": {
                "file": MODEL_FILE,
                "sha256": sha256_of(model_path),
                "bytes": model_path.stat().st_size,
            },
        }
        fast_path = _write_fast_bundle(pipeline, staging, metadata["artifact"]["sha256"])
        if fast_path is not None:
            metadata[FAST_PATH_FIELD] = fast_path
        files = _write_model_files(pipeline, staging)
        if files:
            metadata[FILES_FIELD] = files
        _write_json(staging / METADATA_FILE, metadata)
        _refuse_to_replace_a_foreign_directory(directory)  # still, after the time it took
    return metadata


def _write_fast_bundle(pipeline: Any, directory: Path, model_sha256: str) -> dict[str, Any] | None:
    """Write the compiled form of ``pipeline``, if it has one; return its model.json entry."""
    try:
        fast = compile_pipeline(pipeline)
        verify(fast, pipeline)
    except NotCompilable as exc:
        logger.debug("no %s for this model: %s", BUNDLE_FILE, exc)
        return None
    path = directory / BUNDLE_FILE
    save_bundle(fast, path)
    verify(load_bundle(path), pipeline)  # what load_model will read gives the same answers
    return {
        "file": BUNDLE_FILE,
        "format": fast.bundle_format,
        "sha256": sha256_of(path),
        "bytes": path.stat().st_size,
        "model_sha256": model_sha256,
    }


def _refuse_to_replace_a_foreign_directory(directory: Path) -> None:
    if directory.exists() and not (directory / METADATA_FILE).exists() and any(directory.iterdir()):
        raise ModelError(
            f"{directory} exists and is not a model directory; refusing to replace it "
            "(choose another --out or empty it)"
        )


def read_metadata(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / METADATA_FILE
    if not directory.is_dir():
        raise ModelError(f"model directory {directory} does not exist; train one with `moviegenre train`")
    if not path.is_file():
        raise ModelError(f"{directory} has no {METADATA_FILE}: it is not a moviegenre model directory")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not valid JSON ({exc}); the model directory is damaged") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{path} must hold a JSON object")
    missing = [key for key in _REQUIRED_KEYS if key not in meta]
    if missing:
        raise ModelError(f"{path} lacks field(s) {missing}; the model directory is damaged")
    if meta["format_version"] != FORMAT_VERSION:
        raise ModelError(
            f"{path} has format_version {meta['format_version']!r}; this moviegenre reads "
            f"version {FORMAT_VERSION}. Retrain the model with this version"
        )
    if list(meta["genres"]) != list(GENRES):
        raise ModelError(f"{path}: field 'genres' is not the 24 genres in the expected order")
    return meta


def _check_sklearn_version(meta: dict[str, Any], path: Path) -> None:
    made_with = str(meta["versions"].get("scikit-learn", "unknown"))
    installed = importlib_metadata.version("scikit-learn")
    if made_with.split(".")[:2] != installed.split(".")[:2]:
        raise ModelError(
            f"{path} was made with scikit-learn {made_with}, but {installed} is "
            "installed; models are only loaded by the same scikit-learn minor version. "
            f"Retrain it, or install scikit-learn=={made_with}"
        )


def load_model(directory: str | Path) -> GenreModel:
    """Load a model directory after checking its checksum, versions and the types it holds.

    Raises :class:`~moviegenre.errors.ModelError` with the reason when the directory is
    missing, altered, truncated, made by an incompatible scikit-learn, names a type that is
    not trusted, or holds a malformed calibration (a model without one is served uncalibrated).
    """
    directory = Path(directory)
    meta = read_metadata(directory)
    calibration = _read_calibration(directory, meta)
    artifact = meta["artifact"]
    if not isinstance(artifact, dict) or artifact.get("file") != MODEL_FILE or "sha256" not in artifact:
        raise ModelError(f"{directory / METADATA_FILE}: field 'artifact' is malformed")
    model_path = _checked_file(directory / MODEL_FILE, artifact["sha256"])
    _check_sklearn_version(meta, directory / METADATA_FILE)
    check_types(model_path)
    _check_model_files(directory, meta)
    fast = _read_fast_bundle(directory, meta)
    if fast is not None:
        return GenreModel(None, meta, directory, scorer=fast,
                          load_pipeline=partial(_load_pipeline, model_path, directory), calibration=calibration)
    pipeline = _load_pipeline(model_path, directory)
    return GenreModel(pipeline, meta, directory, scorer=PipelineScorer(pipeline), calibration=calibration)


def _file_owners(pipeline: Any) -> list[Any]:
    """The parts of a fitted pipeline that read files beside the model: every estimator in it
    with ``model_files()`` (relative path -> current file) and ``use_model_directory(dir)``."""
    owners: list[Any] = []
    seen: set[int] = set()

    def visit(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, list | tuple):
            for child in obj:
                visit(child)
        elif isinstance(obj, dict):
            for child in obj.values():
                visit(child)
        elif hasattr(obj, "get_params"):
            if callable(getattr(obj, "model_files", None)) and callable(getattr(obj, "use_model_directory", None)):
                owners.append(obj)
            for child in vars(obj).values():
                visit(child)

    visit(pipeline)
    return owners


def _write_model_files(pipeline: Any, directory: Path) -> list[dict[str, Any]]:
    """Copy the files the pipeline's parts read (:func:`_file_owners`) into ``directory``;
    return their model.json entries (relative path, sha256, size)."""
    import shutil

    sources: dict[str, Path] = {}
    for owner in _file_owners(pipeline):
        for relative, source in owner.model_files().items():
            relative = Path(relative).as_posix()
            if Path(relative).is_absolute() or ".." in Path(relative).parts or relative in (MODEL_FILE, METADATA_FILE):
                raise ValueError(f"{type(owner).__name__} asks for a file at {relative!r}, outside its place")
            if sources.setdefault(relative, Path(source)) != Path(source):
                raise ValueError(f"two parts of the pipeline need different files at {relative!r}")
    entries = []
    for relative, source in sorted(sources.items()):
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        entries.append({"file": relative, "sha256": sha256_of(target), "bytes": target.stat().st_size})
    return entries


def _check_model_files(directory: Path, meta: dict[str, Any]) -> None:
    """Check every file model.json lists beside the model: there, unaltered, inside the directory."""
    entries = meta.get(FILES_FIELD, [])
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("file"), str) and isinstance(e.get("sha256"), str) for e in entries
    ):
        raise ModelError(f"{directory / METADATA_FILE}: field {FILES_FIELD!r} is malformed")
    for entry in entries:
        relative = Path(entry["file"])
        if relative.is_absolute() or ".." in relative.parts:
            raise ModelError(f"{directory / METADATA_FILE}: file {entry['file']!r} is not inside the model directory")
        _checked_file(directory / relative, entry["sha256"])


def _read_calibration(directory: Path, meta: dict[str, Any]) -> Calibration:
    """The calibration model.json holds, checked; the identity for a model without one."""
    try:
        return Calibration.from_json(meta.get(CALIBRATION_FIELD), CALIBRATION_FIELD)
    except ModelError as exc:
        raise ModelError(f"{directory / METADATA_FILE}: {exc}; the model directory is damaged") from None


def _read_fast_bundle(directory: Path, meta: dict[str, Any]) -> FastLinear | FastStatic | None:
    """The compiled model model.json lists, checked like ``model.skops``; ``None`` if it lists
    none, or one compiled from another ``model.skops`` or in another format (then the
    pipeline is loaded, and its types checked, as always)."""
    entry = meta.get(FAST_PATH_FIELD)
    if entry is None:
        return None
    if not isinstance(entry, dict) or entry.get("file") != BUNDLE_FILE or "sha256" not in entry:
        raise ModelError(f"{directory / METADATA_FILE}: field {FAST_PATH_FIELD!r} is malformed")
    if entry.get("model_sha256") != meta["artifact"]["sha256"] or entry.get("format") not in BUNDLE_FORMATS:
        logger.warning("%s does not belong to this %s; loading the pipeline instead", BUNDLE_FILE, MODEL_FILE)
        return None
    return load_bundle(_checked_file(directory / BUNDLE_FILE, entry["sha256"]))


def _checked_file(path: Path, sha256: str) -> Path:
    """``path``, after checking that it is there and has the sha256 model.json records."""
    if not path.is_file():
        raise ModelError(f"{path} is missing; the model directory is incomplete")
    actual = sha256_of(path)
    if actual != sha256:
        raise ModelError(
            f"{path} has been altered or truncated: its sha256 is {actual}, but "
            f"model.json records {sha256}. Refusing to load it; retrain or restore it"
        )
    return path


def check_types(model_path: Path) -> set[str]:
    """Every type ``model.skops`` names, after refusing the file if one is not trusted.

    This reads the file's schema with the standard library alone, so that a model served
    through its compiled form is checked at load without importing skops and scikit-learn
    (seconds of a cold start). What is trusted: the containers and numbers skops stores as
    data, scikit-learn's classes, and the functions and classes the model kinds list
    (:func:`trusted_types`). skops checks the types again, its own way, when the pipeline is
    deserialised (:func:`_load_pipeline`).
    """
    try:
        with zipfile.ZipFile(model_path) as archive:
            named = _named_types(archive.read("schema.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
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
    """The node types, found by regular expressions over the text (twice as fast as parsing
    78 MB of JSON, a third of a second of a cold start), or ``None`` when the text is not laid
    out exactly as skops writes it.

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


def _load_pipeline(model_path: Path, directory: Path | None = None) -> Any:
    """Deserialise ``model.skops`` after skops' own check: every type it does not trust by
    default must be on moviegenre's explicit list (:func:`trusted_types`). The parts that read
    files beside the model are pointed at ``directory``, where :func:`load_model` checked them."""
    import skops.io

    try:
        untrusted_to_skops = set(skops.io.get_untrusted_types(file=model_path))
    except Exception as exc:  # skops raises many types for a damaged file
        raise ModelError(f"{model_path} is not a readable skops file ({type(exc).__name__}: {exc})") from None
    unexpected = sorted(untrusted_to_skops - trusted_types())
    if unexpected:
        raise ModelError(f"{model_path} names types that are not on moviegenre's trusted list: {unexpected}")
    try:
        pipeline = skops.io.load(model_path, trusted=sorted(untrusted_to_skops))
    except Exception as exc:  # skops raises many types for a damaged file
        raise ModelError(f"{model_path} could not be loaded ({type(exc).__name__}: {exc})") from None
    for owner in _file_owners(pipeline):
        owner.use_model_directory(model_path.parent if directory is None else directory)
    return pipeline
