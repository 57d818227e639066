"""Model directories: the pipeline serialised with skops plus ``model.json``.

A model directory holds:

* ``model.skops``: the fitted pipeline, in skops' format, which stores data and type names,
  never code. Loading lists the types the file names and refuses any that are not on our
  explicit trusted list, so a hostile file cannot run code.
* ``model.json``: what the model is (kind, id, genres, thresholds), how it was made (library
  versions, training data sha256 and row count, parameters), how well it did (cross-validated
  metrics) and the sha256 of ``model.skops``, verified on every load.

Directories are written to a temporary sibling and renamed into place, so a crash never leaves
a half-written model that looks complete.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import zipfile
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import sklearn
import skops.io

from .data import sha256_of
from .errors import ModelError
from .genres import GENRES
from .models import all_trusted_types
from .predict import GenreModel

MODEL_FILE = "model.skops"
METADATA_FILE = "model.json"
FORMAT_VERSION = 1

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
    versions) as a model directory, atomically replacing any model already there."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        model_path = staging / MODEL_FILE
        skops.io.dump(pipeline, model_path, compression=zipfile.ZIP_DEFLATED)
        metadata = {
            "format_version": FORMAT_VERSION,
            **metadata,
            "versions": library_versions(),
            "artifact": {
                "file": MODEL_FILE,
                "sha256": sha256_of(model_path),
                "bytes": model_path.stat().st_size,
            },
        }
        _write_json(staging / METADATA_FILE, metadata)
        _replace_directory(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return metadata


def _replace_directory(staging: Path, directory: Path) -> None:
    if directory.exists() and not (directory / METADATA_FILE).exists() and any(directory.iterdir()):
        raise ModelError(
            f"{directory} exists and is not a model directory; refusing to replace it "
            "(choose another --out or empty it)"
        )
    backup = None
    if directory.exists():
        backup = directory.with_name(f".{directory.name}.old-{os.getpid()}")
        os.replace(directory, backup)
    os.replace(staging, directory)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


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
    if made_with.split(".")[:2] != sklearn.__version__.split(".")[:2]:
        raise ModelError(
            f"{path} was made with scikit-learn {made_with}, but {sklearn.__version__} is "
            "installed; models are only loaded by the same scikit-learn minor version. "
            f"Retrain it, or install scikit-learn=={made_with}"
        )


def load_model(directory: str | Path) -> GenreModel:
    """Load a model directory after checking its checksum, versions and the types it holds.

    Raises :class:`~moviegenre.errors.ModelError` with the reason when the directory is
    missing, altered, truncated, made by an incompatible scikit-learn, or names a type that is
    not trusted.
    """
    directory = Path(directory)
    meta = read_metadata(directory)
    artifact = meta["artifact"]
    if not isinstance(artifact, dict) or artifact.get("file") != MODEL_FILE or "sha256" not in artifact:
        raise ModelError(f"{directory / METADATA_FILE}: field 'artifact' is malformed")
    model_path = directory / MODEL_FILE
    if not model_path.is_file():
        raise ModelError(f"{model_path} is missing; the model directory is incomplete")
    actual = sha256_of(model_path)
    if actual != artifact["sha256"]:
        raise ModelError(
            f"{model_path} has been altered or truncated: its sha256 is {actual}, but "
            f"model.json records {artifact['sha256']}. Refusing to load it; retrain or restore it"
        )
    _check_sklearn_version(meta, directory / METADATA_FILE)
    try:
        named_types = set(skops.io.get_untrusted_types(file=model_path))
    except (zipfile.BadZipFile, KeyError, ValueError, json.JSONDecodeError) as exc:
        raise ModelError(f"{model_path} is not a readable skops file ({exc})") from None
    untrusted = sorted(named_types - trusted_types())
    if untrusted:
        raise ModelError(
            f"{model_path} names types that are not on moviegenre's trusted list: {untrusted}. "
            "Refusing to load it: only models made by moviegenre can be loaded"
        )
    try:
        pipeline = skops.io.load(model_path, trusted=sorted(named_types))
    except Exception as exc:  # skops raises many types for a damaged file
        raise ModelError(f"{model_path} could not be loaded ({type(exc).__name__}: {exc})") from None
    return GenreModel(pipeline, meta, directory)
