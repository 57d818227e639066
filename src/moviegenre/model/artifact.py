"""Model directories: saved atomically, loaded only after every check.

A model directory (:class:`~moviegenre.core.layout.Layout`) holds:

* ``model.skops``: the fitted pipeline, in skops' format, which stores data and type names,
  never code. Loading lists the types the file names and refuses any that are not trusted
  (:mod:`moviegenre.model.trust`), so a hostile file cannot run code.
* ``model.json``: the model card (:mod:`moviegenre.model.card`), with the sha256 of every other
  file, verified on every load.
* ``fast.npz``, for the kinds that compile (:attr:`~moviegenre.kinds.registry.ModelKind.compile`):
  the pipeline compiled for inference (:mod:`moviegenre.fast.bundle`), plain arrays and JSON
  text read with ``allow_pickle=False``, and the sha256 of the ``model.skops`` it was compiled
  from. :func:`load_model` scores with it and deserialises ``model.skops`` (types checked as
  always) only when the pipeline itself is asked for: a cold start in a fraction of a second.
  A kind that :attr:`~moviegenre.kinds.registry.ModelKind.must_compile` is never saved without
  it, and never loaded without it.
* files beside the model that its pipeline reads (a hybrid's sentence encoder, exported to
  ONNX, under ``encoder/``): each listed in the card (``files``) with its sha256 and size, all
  checked on every load; the pipeline's parts that read them (``model_files()`` /
  ``use_model_directory()``) are pointed at the directory they were loaded from, so a copied or
  moved directory works as it is.

Directories are written to a temporary sibling and renamed into place, so a crash never leaves
a half-written model that looks complete.
"""

from __future__ import annotations

import logging
import os
import shutil
import zipfile
from collections.abc import Mapping
from functools import partial
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from moviegenre.core.errors import ModelError, UsageError
from moviegenre.core.files import atomic_directory, sha256_of
from moviegenre.core.layout import Layout
from moviegenre.fast.bundle import BUNDLE_FORMAT, load_bundle, save_bundle
from moviegenre.kinds.graph import estimators
from moviegenre.kinds.registry import ModelKind, compiled_form, get_kind
from moviegenre.model.card import (
    FORMAT_VERSION,
    SAVED_FIELDS,
    FastEntry,
    FileEntry,
    ModelCard,
    inside,
    library_versions,
    read_card,
    write_card,
)
from moviegenre.model.genre_model import GenreModel, PipelineScorer
from moviegenre.model.trust import check_types, skops_trusted
from moviegenre.model.vocabulary import restore_vocabularies, vocabularies_as_arrays

# scikit-learn and skops are imported where they are used: loading a model through its
# compiled form needs neither, and importing them takes seconds.

logger = logging.getLogger(__name__)


def save_model(pipeline: Any, card: ModelCard | Mapping[str, Any], directory: str | Path) -> dict[str, Any]:
    """Write ``pipeline`` and its ``card`` (completed with the checksums of the files and the
    library versions) as a model directory, atomically replacing any model already there;
    return model.json as written.

    A kind with a fast form also gets it, ``fast.npz``, checked against the pipeline before it
    is written; a kind that must compile and cannot is refused with a
    :class:`~moviegenre.core.errors.ModelError` saying why, and nothing is written."""
    import skops.io

    card = card if isinstance(card, ModelCard) else ModelCard.from_json(card, "the model's metadata")
    directory = Path(directory)
    fast = compiled_form(card.kind, pipeline)  # before anything is written: a refusal leaves no trace
    _refuse_to_replace_a_foreign_directory(directory)
    with atomic_directory(directory) as staging:
        layout = Layout(staging)
        with vocabularies_as_arrays(pipeline):
            skops.io.dump(pipeline, layout.model, compression=zipfile.ZIP_DEFLATED)
        artifact = _entry(layout, Layout.MODEL)
        update: dict[str, Any] = {"versions": library_versions(), "artifact": artifact}
        if fast is not None:
            update["fast_path"] = _write_fast_form(fast, pipeline, layout, artifact.sha256)
        files = _write_model_files(pipeline, staging)
        if files:
            update["files"] = files
        kept = card.model_dump(exclude_unset=True, exclude=set(SAVED_FIELDS))
        card = ModelCard.model_validate({"format_version": FORMAT_VERSION, **kept, **update})
        write_card(card, staging)
        _refuse_to_replace_a_foreign_directory(directory)  # still, after the time it took
    return card.to_json()


def _entry(layout: Layout, relative: str) -> FileEntry:
    path = layout.directory / relative
    return FileEntry(file=relative, sha256=sha256_of(path), bytes=path.stat().st_size)


def _write_fast_form(fast: Any, pipeline: Any, layout: Layout, model_sha256: str) -> FastEntry:
    """Write the compiled form, check that what :func:`load_model` will read gives the
    pipeline's answers, and return its card entry."""
    from moviegenre.kinds.compile import verify

    save_bundle(fast, layout.fast)
    verify(load_bundle(layout.fast), pipeline)
    entry = _entry(layout, Layout.FAST)
    return FastEntry(**dict(entry), format=BUNDLE_FORMAT, form=_form_of(fast), model_sha256=model_sha256)


def _form_of(fast: Any) -> str:
    """The compiled form's tag, as the bundle records it."""
    return str(fast.form)


def _refuse_to_replace_a_foreign_directory(directory: Path) -> None:
    if directory.exists() and not Layout(directory).card.exists() and any(directory.iterdir()):
        raise ModelError(
            f"{directory} exists and is not a model directory; refusing to replace it "
            "(choose another --out or empty it)"
        )


def load_model(directory: str | Path) -> GenreModel:
    """Load a model directory after checking its card, checksums, versions and the types it holds.

    Raises :class:`~moviegenre.core.errors.ModelError` with the reason when the directory is
    missing, altered, truncated, of another format, made by an incompatible scikit-learn, names
    a type that is not trusted, lacks the compiled form its kind must have, or holds a malformed
    card (:func:`~moviegenre.model.card.read_card`).
    """
    layout = Layout(Path(directory))
    card = read_card(layout.directory)
    _refuse_links_out(layout)
    kind = _kind_of(card, layout)
    if card.artifact is None or card.artifact.file != Layout.MODEL:
        raise ModelError(f"{layout.card}: field 'artifact' is malformed (it must describe {Layout.MODEL})")
    model_path = _checked_file(layout.model, card.artifact.sha256)
    _check_sklearn_version(card, layout.card)
    check_types(model_path)
    _check_model_files(layout, card)
    fast = _read_fast_form(layout, card, kind)
    listed = frozenset(entry.file for entry in card.files)
    if fast is not None:
        _check_outputs(getattr(fast, "n_outputs", None), card, layout.fast)
        return GenreModel(None, card, layout.directory, scorer=fast,
                          load_pipeline=partial(_load_pipeline, model_path, layout.directory, listed))
    pipeline = _load_pipeline(model_path, layout.directory, listed)
    _check_outputs(_outputs_of(pipeline), card, model_path)
    return GenreModel(pipeline, card, layout.directory, scorer=PipelineScorer(pipeline, len(card.labels)))


def _outputs_of(pipeline: Any) -> int | None:
    """How many probabilities ``pipeline`` gives per movie, where its last step says."""
    final = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    classes = getattr(final, "classes_", None)
    return getattr(final, "n_outputs_", None) or (len(classes) if classes is not None else None)


def _check_outputs(outputs: int | None, card: ModelCard, path: Path) -> None:
    """Refuse a model whose scorer gives another number of probabilities than the card has labels."""
    if outputs is not None and outputs != len(card.labels):
        raise ModelError(
            f"{path} gives {outputs} probabilities per movie but {Layout.CARD} names {len(card.labels)} labels; "
            "the model directory is damaged"
        )


#: The most entries :func:`_refuse_links_out` looks at: a model directory holds a handful.
MAX_DIRECTORY_ENTRIES = 10_000


def _refuse_links_out(layout: Layout) -> None:
    """Refuse the directory if a symbolic link in it leads out of it (:func:`~moviegenre.model.card.inside`):
    ``model.skops``, ``fast.npz``, the ``encoder/`` folder or a file in it, or anything else."""
    seen = 0
    for folder, folders, files in os.walk(layout.directory):
        for name in [*folders, *files]:
            path = Path(folder, name)
            if path.is_symlink():
                inside(layout, path.relative_to(layout.directory).as_posix())
        seen += len(folders) + len(files)
        if seen > MAX_DIRECTORY_ENTRIES:
            raise ModelError(
                f"{layout.directory} holds over {MAX_DIRECTORY_ENTRIES:,} files; it is not a model directory"
            )


def _kind_of(card: ModelCard, layout: Layout) -> ModelKind:
    try:
        return get_kind(card.kind)
    except UsageError as exc:
        raise ModelError(f"{layout.card}: field 'kind' is malformed ({exc})") from None


def _check_sklearn_version(card: ModelCard, path: Path) -> None:
    made_with = card.versions.get("scikit-learn", "unknown")
    installed = importlib_metadata.version("scikit-learn")
    if made_with.split(".")[:2] != installed.split(".")[:2]:
        raise ModelError(
            f"{path} was made with scikit-learn {made_with}, but {installed} is "
            "installed; models are only loaded by the same scikit-learn minor version. "
            f"Retrain it, or install scikit-learn=={made_with}"
        )


def _read_fast_form(layout: Layout, card: ModelCard, kind: ModelKind) -> Any | None:
    """The compiled form the card lists, checked like ``model.skops``; ``None`` if it lists
    none or one that does not belong to this ``model.skops``, for a kind that may be served
    through its pipeline. A kind that must compile is refused then."""
    entry = card.fast_path
    retrain = f"retrain it: {card.retrain_hint(layout.directory)}"
    if entry is None:
        if kind.must_compile:
            raise ModelError(
                f"{layout.directory} has no {Layout.FAST}, and a {kind.name!r} model is only served "
                f"through its compiled form; {retrain}"
            )
        return None
    if entry.file != Layout.FAST:
        raise ModelError(f"{layout.card}: field 'fast_path.file' is malformed (it must be {Layout.FAST})")
    if entry.model_sha256 != card.artifact.sha256 or entry.format != BUNDLE_FORMAT:
        reason = (
            f"{layout.fast} does not belong to this {Layout.MODEL}"
            if entry.model_sha256 != card.artifact.sha256
            else f"{layout.fast} has bundle format {entry.format}, not {BUNDLE_FORMAT}"
        )
        if kind.must_compile:
            raise ModelError(f"{reason}, and a {kind.name!r} model is only served through its compiled form; {retrain}")
        logger.warning("%s; loading the pipeline instead", reason)
        return None
    return load_bundle(_checked_file(layout.fast, entry.sha256))


def _checked_file(path: Path, sha256: str) -> Path:
    """``path``, after checking that it is there and has the sha256 model.json records."""
    if not path.is_file():
        if path.exists():
            raise ModelError(f"{path} is not a regular file; the model directory is damaged")
        raise ModelError(f"{path} is missing; the model directory is incomplete")
    actual = sha256_of(path)
    if actual != sha256:
        raise ModelError(
            f"{path} has been altered or truncated: its sha256 is {actual}, but "
            f"{Layout.CARD} records {sha256}. Refusing to load it; retrain or restore it"
        )
    return path


# --- files beside the model that its pipeline reads ----------------------------------------------


def _file_owners(pipeline: Any) -> list[Any]:
    """The parts of a fitted pipeline that read files beside the model: every estimator in it
    with ``model_files()`` (relative path -> current file) and ``use_model_directory(dir)``."""
    return [
        part for part in estimators(pipeline)
        if callable(getattr(part, "model_files", None)) and callable(getattr(part, "use_model_directory", None))
    ]  # fmt: skip


def _write_model_files(pipeline: Any, directory: Path) -> list[FileEntry]:
    """Copy the files the pipeline's parts read (:func:`_file_owners`) into ``directory``;
    return their card entries (relative path, sha256, size)."""
    sources: dict[str, Path] = {}
    for owner in _file_owners(pipeline):
        for relative, source in owner.model_files().items():
            relative = Path(relative).as_posix()
            if Path(relative).is_absolute() or ".." in Path(relative).parts or relative in Layout.RESERVED:
                raise ValueError(f"{type(owner).__name__} asks for a file at {relative!r}, outside its place")
            if sources.setdefault(relative, Path(source)) != Path(source):
                raise ValueError(f"two parts of the pipeline need different files at {relative!r}")
    layout = Layout(directory)
    for relative, source in sorted(sources.items()):
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return [_entry(layout, relative) for relative in sorted(sources)]


def _check_model_files(layout: Layout, card: ModelCard) -> None:
    """Check every file the card lists beside the model: there, unaltered, inside the directory."""
    for entry in card.files:
        relative = Path(entry.file)
        if relative.is_absolute() or ".." in relative.parts:
            raise ModelError(f"{layout.card}: file {entry.file!r} is not inside the model directory")
        _checked_file(layout.directory / relative, entry.sha256)


def _load_pipeline(model_path: Path, directory: Path | None = None, listed: frozenset[str] | None = None) -> Any:
    """Deserialise ``model.skops`` after skops' own check of its types
    (:func:`~moviegenre.model.trust.skops_trusted`). The parts that read files beside the model
    are pointed at ``directory``, where :func:`load_model` checked them: the card's files,
    ``listed``, must hold every one they read."""
    import skops.io

    trusted = skops_trusted(model_path)
    try:
        pipeline = restore_vocabularies(skops.io.load(model_path, trusted=trusted))
    except Exception as exc:  # skops raises many types for a damaged file
        raise ModelError(f"{model_path} could not be loaded ({type(exc).__name__}: {exc})") from None
    for owner in _file_owners(pipeline):
        owner.use_model_directory(model_path.parent if directory is None else directory)
        unchecked = sorted(set(owner.model_files()) - listed) if listed is not None else []
        if unchecked:
            raise ModelError(
                f"{model_path} reads {unchecked} beside it, which {Layout.CARD} does not list with a "
                "checksum; the model directory is damaged"
            )
    return pipeline


__all__ = ["load_model", "save_model"]
