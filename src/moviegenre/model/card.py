"""``model.json``, the model card: one typed model, read and written here alone.

A card says what a model is (kind, id, title, labels, thresholds, the calibration of its
probabilities as plain numbers), how it was made (parameters, training data's sha256 and row
count, library versions), how well it did (cross-validated metrics) and which files the
directory holds, each with its sha256 and size (:class:`FileEntry`): ``model.skops``
(``artifact``), the compiled form (``fast_path``) and the files its pipeline reads (``files``).

Reading (:func:`read_card`) never lets a malformed file through as a bare ``ValueError``,
``RecursionError`` or ``AttributeError``: a wrong type, a number out of bounds, a huge integer
or deep nesting is a :class:`~moviegenre.core.errors.ModelError` that names the file and the
field. A directory of another :data:`FORMAT_VERSION` is refused in one line that says how to
retrain it.
"""

from __future__ import annotations

import json
import math
import platform
import re
from collections.abc import Mapping
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator, model_validator

from moviegenre.core.errors import ModelError
from moviegenre.core.genres import GENRES
from moviegenre.core.labels import MAX_LABEL_CHARS, MAX_LABELS, MIN_LABELS, check_label_set, probability_keys
from moviegenre.core.layout import Layout
from moviegenre.model.calibration import Calibration

#: The version of a model directory's layout and of the type names inside ``model.skops``.
#: 2: the package was split into folders (``moviegenre.kinds.text.decade_of``...), and the
#: compiled form's entry names its ``form``. 3: a vectorizer's vocabulary is stored as arrays
#: (:class:`moviegenre.model.vocabulary.Vocabulary`), not as a JSON node per term. 4: a model
#: has its own labels (``labels``, with each one's positives, replaces the 24 ``genres``), and
#: the calibration's maps are under ``labels``.
FORMAT_VERSION = 4
#: Fields every saved card has; the rest have defaults.
REQUIRED_FIELDS = ("format_version", "id", "kind", "labels", "artifact", "versions")
#: Largest model.json read (a real one is tens of kilobytes: the calibration's breakpoints).
MAX_CARD_BYTES = 16 * 1024 * 1024
#: Deepest nesting of the free-form fields (``params``, ``metrics``, ``calibration``).
MAX_NESTING = 16
#: Longest integer literal read as a number (more digits cannot be a count of this world).
_MAX_INT_DIGITS = 30
#: Fields the saver fills in (:func:`moviegenre.model.artifact.save_model`): what a training
#: run's card leaves out.
SAVED_FIELDS = ("format_version", "versions", "artifact", "fast_path", "files")

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Count = Annotated[int, Field(ge=0, le=2**53)]
RelativePath = Annotated[str, Field(min_length=1, max_length=500)]
Label = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=5_000)]
#: Longest model title, in characters.
MAX_TITLE_CHARS = 100


class _Card(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class FileEntry(_Card):
    """A file of the model directory: relative path, sha256 and size."""

    file: RelativePath
    sha256: Sha256
    bytes: Count


class FastEntry(FileEntry):
    """The compiled form (``fast.npz``), and the ``model.skops`` it was compiled from."""

    #: The bundle's format version (:data:`moviegenre.fast.bundle.BUNDLE_FORMAT`).
    format: Annotated[int, Field(ge=0, le=1_000)]
    #: Which compiled form it holds (``"linear"``, ``"static"``).
    form: Label
    model_sha256: Sha256


class LabelEntry(_Card):
    """One of the model's labels, and how many training movies had it (unknown: ``None``)."""

    name: Annotated[str, Field(min_length=1, max_length=MAX_LABEL_CHARS)]
    positives: Count | None = None


class LabelsFrom(_Card):
    """Where the training file kept the labels (:class:`moviegenre.core.data.LabelSpec`): what
    ``evaluate`` and ``report`` read in a file of the same shape unless told otherwise."""

    column: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    sep: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    columns: list[Annotated[str, Field(min_length=1, max_length=500)]] | None = Field(
        default=None, max_length=MAX_LABELS
    )
    prefix: Annotated[str, Field(min_length=1, max_length=500)] | None = None


class TrainingData(_Card):
    """What the model was trained on: the file's name (no path of the machine), sha256 and rows."""

    source: Text
    sha256: Sha256
    rows: Count


class ModelCard(_Card):
    """What ``model.json`` holds. Fields a card was not given are left out of :meth:`to_json`,
    so a card read from a file is written back as it was."""

    format_version: Annotated[int, Field(ge=0, le=1_000)] = FORMAT_VERSION
    id: Label
    kind: Label
    description: Text = ""
    created_at: Annotated[str, Field(max_length=64)] = ""
    #: What the model is called where people see it (the web page's heading); none: moviegenre.
    title: Annotated[str, Field(min_length=1, max_length=MAX_TITLE_CHARS)] | None = None
    #: The labels the model predicts, in its output order: by default the course's 24 genres.
    labels: list[LabelEntry] = Field(
        default_factory=lambda: [LabelEntry(name=genre) for genre in GENRES],
        min_length=MIN_LABELS,
        max_length=MAX_LABELS,
    )
    labels_from: LabelsFrom | None = None
    #: Per label, the probability from which it is predicted (0.5 for a label left out).
    thresholds: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=dict)
    threshold_objective: Text | None = None
    #: :meth:`Calibration.to_json`, checked by :meth:`Calibration.from_json`; none: uncalibrated.
    calibration: dict[str, JsonValue] | None = None
    params: dict[str, JsonValue] = Field(default_factory=dict)
    training_data: TrainingData | None = None
    training_seconds: Annotated[float, Field(ge=0.0)] = 0.0
    metrics: dict[str, JsonValue] = Field(default_factory=dict)
    versions: dict[str, Annotated[str, Field(max_length=200)]] = Field(default_factory=dict)
    artifact: FileEntry | None = None
    fast_path: FastEntry | None = None
    files: list[FileEntry] = Field(default_factory=list, max_length=1_000)

    @field_validator("labels")
    @classmethod
    def _a_label_set(cls, labels: list[LabelEntry]) -> list[LabelEntry]:
        check_label_set([label.name for label in labels])
        return labels

    @model_validator(mode="after")
    def _thresholds_of_its_labels(self) -> ModelCard:
        unknown = sorted(set(self.thresholds) - set(self.label_names))
        if unknown:
            raise ValueError(f"field 'thresholds' names label(s) the model does not have: {unknown[:5]}")
        return self

    @property
    def label_names(self) -> tuple[str, ...]:
        """The model's labels, in its output order."""
        return tuple(label.name for label in self.labels)

    @property
    def probability_keys(self) -> tuple[str, ...]:
        """The labels' output keys, ``p_<label>`` (:func:`~moviegenre.core.labels.probability_keys`)."""
        return probability_keys(self.label_names)

    @field_validator("params", "metrics", "calibration", mode="before")
    @classmethod
    def _plain_json(cls, value: Any) -> Any:
        """Tuples as lists, as JSON gives them back; anything JSON cannot hold refused."""
        if value is None or not isinstance(value, Mapping):
            return value
        if _depth(value) > MAX_NESTING:
            raise ValueError(f"is nested more than {MAX_NESTING} levels deep")
        try:
            return json.loads(json.dumps(value, allow_nan=False, default=_refuse))
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None

    # --- the dict form ------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The card as model.json holds it (the fields it was given, in the usual order)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def from_json(cls, payload: Any, source: str | Path = "model card") -> ModelCard:
        """A card from its dict form; :class:`ModelError` names ``source`` and the first bad field."""
        if not isinstance(payload, Mapping):
            raise ModelError(f"{source} must hold a JSON object, not {type(payload).__name__}")
        try:
            card = cls.model_validate(dict(payload))
        except ValidationError as exc:
            raise ModelError(f"{source}: {_first_problem(exc)}; the model directory is damaged") from None
        except RecursionError:
            raise ModelError(
                f"{source}: a field is nested too deep to be read; the model directory is damaged"
            ) from None
        try:
            card.read_calibration()
        except ModelError as exc:
            raise ModelError(f"{source}: {exc}; the model directory is damaged") from None
        return card

    def read_calibration(self) -> Calibration:
        """The calibration the card holds, checked; the identity for a card without one."""
        return Calibration.from_json(self.calibration, "calibration", self.label_names)

    def retrain_hint(self, directory: str | Path) -> str:
        return f"moviegenre train --kind {self.kind} --out {directory}"


# --- reading and writing ------------------------------------------------------------------------


def read_card(directory: str | Path) -> ModelCard:
    """The card of the model directory ``directory``, checked: every field typed and bounded,
    the fields of a saved model present, and this :data:`FORMAT_VERSION`."""
    layout = Layout(Path(directory))
    path = layout.card
    if not layout.directory.is_dir():
        raise ModelError(f"model directory {layout.directory} does not exist; train one with `moviegenre train`")
    inside(layout, Layout.CARD)
    if not path.is_file():
        raise ModelError(f"{layout.directory} has no {Layout.CARD}: it is not a moviegenre model directory")
    if path.stat().st_size > MAX_CARD_BYTES:
        raise ModelError(f"{path} is over {MAX_CARD_BYTES:,} bytes; the model directory is damaged")
    payload = parse_json(path.read_bytes(), path)
    if not isinstance(payload, dict):
        raise ModelError(f"{path} must hold a JSON object, not {type(payload).__name__}")
    missing = [name for name in REQUIRED_FIELDS if name not in payload]
    if missing:
        raise ModelError(f"{path} lacks field(s) {missing}; the model directory is damaged")
    _check_format(payload, layout)
    return ModelCard.from_json(payload, path)


def inside(layout: Layout, relative: str) -> Path:
    """``relative``'s path in the model directory, after checking that it stays there: not a
    symbolic link (nor under one) that leads out of the directory, and a regular file or a folder.

    Only links that leave are refused. One that stays inside reads what the directory holds,
    checked like any file, and moves with it; one that leaves makes the model depend on a file
    the directory does not carry nor guard, which can change, or never end (``/dev/zero``).
    """
    path = layout.directory / relative
    try:
        root, real = layout.directory.resolve(), path.resolve()
    except (OSError, RuntimeError) as exc:  # a loop of links: RuntimeError before Python 3.13
        raise ModelError(f"{path} is a symbolic link that cannot be followed ({exc})") from None
    if not real.is_relative_to(root):
        raise ModelError(
            f"{path} leads out of the model directory, to {real}, through a symbolic link; refusing to "
            "read it: copy the file into the model directory"
        )
    if path.exists() and not (path.is_file() or path.is_dir()):
        raise ModelError(f"{path} is not a regular file; the model directory is damaged")
    return path


def write_card(card: ModelCard, directory: str | Path) -> Path:
    """Write ``card`` as ``directory``'s model.json; return its path."""
    path = Layout(Path(directory)).card
    path.write_text(json.dumps(card.to_json(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def library_versions() -> dict[str, str]:
    """The versions of Python and of the libraries a model file depends on."""
    names = ["moviegenre", "scikit-learn", "numpy", "scipy", "skops", "pandas"]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def _check_format(payload: dict[str, Any], layout: Layout) -> None:
    version = payload["format_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelError(f"{layout.card}: field 'format_version' must be an integer, not {_shown(version)}")
    if version != FORMAT_VERSION:
        kind = payload["kind"] if isinstance(payload["kind"], str) and payload["kind"].isidentifier() else "KIND"
        raise ModelError(
            f"{layout.card} has format_version {version}; this moviegenre reads format_version "
            f"{FORMAT_VERSION}. Retrain the model: moviegenre train --kind {kind} --out {layout.directory}"
        )


# --- JSON that cannot hurt the reader -----------------------------------------------------------


class _Unreadable:
    """A JSON value the reader does not take (a huge or non-finite number): validation then
    refuses it, naming the field, with this description."""

    def __init__(self, description: str):
        self.description = description

    def __repr__(self) -> str:
        return self.description


def _read_int(text: str) -> int | _Unreadable:
    digits = len(text.lstrip("-"))
    return int(text) if digits <= _MAX_INT_DIGITS else _Unreadable(f"an integer of {digits:,} digits")


def _read_float(text: str) -> float | _Unreadable:
    value = float(text)
    return value if math.isfinite(value) else _Unreadable(f"the number {text[:40]} (out of range)")


def _read_constant(name: str) -> _Unreadable:
    return _Unreadable(f"{name} (not a number JSON allows)")


def parse_json(raw: bytes, path: str | Path) -> Any:
    """``raw`` parsed, with huge and non-finite numbers kept as :class:`_Unreadable` (for the
    validation to refuse by field); a file that is not JSON, or is nested past the parser's
    depth, is a :class:`ModelError` naming ``path`` (and, for the nesting, the field)."""
    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_int=_read_int, parse_float=_read_float, parse_constant=_read_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not valid JSON ({exc}); the model directory is damaged") from None
    except RecursionError:
        raise ModelError(f"{path}: {_deep_field(text)}; the model directory is damaged") from None


#: A JSON string (and whether a colon follows: a key), or a bracket.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"(\s*:)?|[\[\]{}]')
#: Deepest nesting :func:`_deep_field` reports, well below Python's recursion limit.
_REPORTED_DEPTH = 64


def _deep_field(text: str) -> str:
    """Which top-level field of ``text`` is nested too deep to be read."""
    depth, key = 0, None
    for token in _TOKEN.finditer(text):
        first = token.group()[0]
        if first == '"':
            if depth == 1 and token.group(1):
                key = token.group()[: -len(token.group(1))]
        elif first in "[{":
            depth += 1
            if depth > _REPORTED_DEPTH:
                where = "the top level" if key is None else f"field {json.loads(key)!r}"
                return f"{where} is nested more than {_REPORTED_DEPTH} levels deep"
        else:
            depth -= 1
    return "it is nested too deep to be read"


def _depth(value: Any) -> int:
    """How deep lists and dicts nest in ``value`` (without recursion: it may be very deep)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            item = list(item.values())
        elif not isinstance(item, list | tuple):
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_NESTING:
            return deepest
        stack.extend((child, depth + 1) for child in item)
    return deepest


def _refuse(value: Any) -> Any:
    raise TypeError(f"{_shown(value)} cannot be stored in model.json")


def _first_problem(exc: ValidationError) -> str:
    """The first validation error as ``field 'training_data.rows' is malformed (...)``."""
    error = exc.errors(include_url=False)[0]
    if not error["loc"]:  # a check across fields: its message names them
        return error["msg"].removeprefix("Value error, ")
    field = _field_name(error["loc"])
    value = error.get("input")
    if isinstance(value, _Unreadable):
        return f"field {field!r} is malformed: {value.description} is not a value moviegenre reads"
    if error["type"] == "extra_forbidden":
        return f"field {field!r} is not a field of model.json"
    if error["type"] == "missing":
        return f"field {field!r} is missing"
    return f"field {field!r} is malformed ({error['msg'].removeprefix('Value error, ')}, got {_shown(value)})"


#: The tags pydantic puts in the location of a :data:`JsonValue`'s error.
_VALUE_TAGS = frozenset({"list", "dict", "str", "int", "float", "bool"})


def _field_name(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif i > 0 and part in _VALUE_TAGS and loc[0] in ("params", "metrics", "calibration"):
            continue
        else:
            parts.append(("." if parts else "") + str(part))
        if len(parts) >= 8:
            parts.append("...")
            break
    return "".join(parts)


def _shown(value: Any) -> str:
    """A short description of a value, for a message."""
    if isinstance(value, list | dict | tuple):
        return f"a {type(value).__name__} of {len(value)} item(s)"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


__all__ = [
    "FORMAT_VERSION",
    "FastEntry",
    "FileEntry",
    "LabelEntry",
    "LabelsFrom",
    "Layout",
    "ModelCard",
    "TrainingData",
    "library_versions",
    "read_card",
    "write_card",
]
