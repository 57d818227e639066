"""Reading and validating movie datasets, and fetching the public ones.

A dataset is a CSV (or a ``.zip`` holding one CSV, or a Parquet file) whose first column is the
movie's ID and which has a ``plot`` column; ``title`` and ``year`` are optional, and labelled
data adds its labels: by default the course's ``genres`` column, a list literal
(``['Comedy', 'Crime']``) or ``Comedy|Crime`` of the 24 genres; or a catalogue's own labels, in
one of the shapes :class:`LabelSpec` describes (a list column, or one 0/1 column per label).

Every problem is reported as a :class:`~moviegenre.core.errors.DataError` that names the file, the
field and the data rows (1-based, header not counted) with their IDs. Reading the file itself,
bounded and with one error per damaged file, is :mod:`moviegenre.core.tables` (CSV and zip) and
:mod:`moviegenre.core.parquet`.
"""

from __future__ import annotations

import ast
import errno
import http.client
import json
import re
import socket
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from moviegenre.core.advice import data_option
from moviegenre.core.errors import DataError, DownloadError, UsageError
from moviegenre.core.files import atomic_path, atomic_write, sha256_of
from moviegenre.core.genres import GENRES
from moviegenre.core.items import frame_problems, to_frame
from moviegenre.core.labels import label_name, sorted_labels
from moviegenre.core.parquet import read_parquet_file
from moviegenre.core.settings import get_settings
from moviegenre.core.tables import CSV_SUFFIXES, read_csv_file, require_regular_file

#: How many offending rows an error message lists before summarising.
MAX_ROWS_IN_MESSAGE = 10
#: Seconds a download waits to connect, and then for each block, before calling the network down.
DOWNLOAD_TIMEOUT_S = 60.0
#: ``errno`` values of a network that cannot reach the host at all.
_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN})

_GENRE_LIST = re.compile(r"^\[\s*(?:'[^']*'\s*(?:,\s*'[^']*'\s*)*,?)?\]$")
_QUOTED = re.compile(r"'([^']*)'")


@dataclass(frozen=True)
class PublicFile:
    url: str
    sha256: str
    filename: str


PUBLIC_FILES: dict[str, PublicFile] = {
    "train": PublicFile(
        url="https://github.com/albahnsen/MIAD_ML_and_NLP/raw/main/datasets/dataTraining.zip",
        sha256="d217985a0aedcf17c6a4519582352bba8beb58d9c4186408b11950c4939f1ba6",
        filename="dataTraining.zip",
    ),
    "test": PublicFile(
        url="https://github.com/albahnsen/MIAD_ML_and_NLP/raw/main/datasets/dataTesting.zip",
        sha256="54d3040773a092eed06f01cf55da61551cd9ab466ac6e766b366e4b8e28592cc",
        filename="dataTesting.zip",
    ),
}


#: Longest list-column field parsed as a Python or JSON list, in characters.
MAX_LABEL_FIELD_CHARS = 100_000
#: What a 0/1 label column may hold, and what each means.
_FLAGS = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}


@dataclass(frozen=True)
class LabelSpec:
    """Where a labelled file keeps its labels: one of three shapes.

    * The default (no field set): the course's ``genres`` column, holding the 24 genres as a
      list literal or separated by ``|``; the model's labels are the 24 genres, in their order.
    * A list column, ``column`` (``genres`` if only ``sep`` is given): each field a Python-list
      text (``['Drama', 'Crime']``), a JSON list (``["Drama", "Crime"]``), or, with ``sep``, the
      names separated by it (``Drama|Crime``). The labels are every name the file uses, in
      alphabetical order (:func:`~moviegenre.core.labels.sorted_labels`).
    * One 0/1 column per label: ``columns`` named, or every column whose name starts with
      ``prefix`` (the label is the rest of the name). The labels keep the columns' order.
    """

    column: str | None = None
    sep: str | None = None
    columns: tuple[str, ...] = ()
    prefix: str | None = None

    def __post_init__(self) -> None:
        shapes = [self.column is not None or self.sep is not None, bool(self.columns), self.prefix is not None]
        if sum(shapes) > 1:
            raise UsageError(
                "give the labels in one shape: a list column (--label-column, --label-sep), 0/1 columns "
                "(--label-columns) or a column prefix (--label-prefix), not several"
            )
        given = {"--label-column": self.column, "--label-sep": self.sep, "--label-prefix": self.prefix}
        for name, value in given.items():
            if value is not None and not value:
                raise UsageError(f"{name} must not be empty")
        if len(set(self.columns)) != len(self.columns):
            raise UsageError("--label-columns names a column more than once")

    @property
    def course(self) -> bool:
        """Whether this is the default: the course's 24 genres in its ``genres`` column."""
        return self == LabelSpec()

    @property
    def list_column(self) -> str:
        return self.column or "genres"

    def to_json(self) -> dict[str, str | list[str]]:
        """The fields that are set, as a model card records how its labels were read."""
        payload: dict[str, str | list[str]] = {}
        if self.column is not None or self.sep is not None:
            payload["column"] = self.list_column
        if self.sep is not None:
            payload["sep"] = self.sep
        if self.columns:
            payload["columns"] = list(self.columns)
        if self.prefix is not None:
            payload["prefix"] = self.prefix
        return payload

    @classmethod
    def from_json(cls, payload: dict[str, object] | None) -> LabelSpec:
        payload = payload or {}
        columns = payload.get("columns") or ()
        return cls(column=payload.get("column"), sep=payload.get("sep"), columns=tuple(columns),  # type: ignore[arg-type]
                   prefix=payload.get("prefix"))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Movies:
    """Movies read from a file: ``frame`` has columns ``plot``, ``title``, ``year``.

    The frame's index holds the IDs (the file's first column); ``labels`` is the (n, L) 0/1
    matrix of labelled data, its columns the labels ``label_names`` (by default the 24
    :data:`~moviegenre.core.genres.GENRES`), else ``None``; ``label_spec`` says where the file
    keeps them.
    """

    frame: pd.DataFrame
    source: str
    sha256: str
    labels: np.ndarray | None = None
    label_names: tuple[str, ...] = GENRES
    label_spec: LabelSpec = LabelSpec()

    def __len__(self) -> int:
        return len(self.frame)

    def subset(self, positions: Sequence[int] | np.ndarray) -> Movies:
        labels = None if self.labels is None else self.labels[positions]
        return Movies(self.frame.iloc[positions], self.source, self.sha256, labels, self.label_names, self.label_spec)

    def sample(self, size: int | None, seed: int = 0) -> Movies:
        """``size`` movies drawn at random with ``seed``, in file order; all of them when
        ``size`` is ``None`` or not below their number."""
        if size is None or size >= len(self):
            return self
        if size < 1:
            raise DataError(f"a sample needs at least 1 movie, not {size}")
        positions = np.random.default_rng(seed).choice(len(self), size, replace=False)
        return self.subset(np.sort(positions))


def fetch_public(
    name: str, data_home: Path, *, mirror: str | None = None, timeout_s: float = DOWNLOAD_TIMEOUT_S
) -> Path:
    """Return the local path of public file ``name`` ("train" or "test"), downloading it once.

    It comes from ``mirror`` (a base URL or a local directory holding the file under its public
    name; by default the ``MOVIEGENRE_DATA_MIRROR`` setting) or else from GitHub, is checked
    against the published sha256, and is moved into place atomically, so an interrupted download
    never leaves a file that looks complete. A network failure, a refusal by the server or a
    mirror without the file is a :class:`DownloadError` that says which; a disk that cannot take
    the file is an :class:`~moviegenre.core.errors.OutputError`.
    """
    spec = PUBLIC_FILES[name]
    target = data_home / spec.filename
    if target.exists() and sha256_of(target) == spec.sha256:
        return target
    source = public_source(spec, mirror if mirror is not None else get_settings().data_mirror)
    with atomic_path(target) as partial:
        _copy_from(source, partial, name=name, timeout_s=timeout_s)
        actual = sha256_of(partial)
        if actual != spec.sha256:
            raise DownloadError(
                f"fetched {source} but its sha256 is {actual}, expected {spec.sha256}: it is not the "
                "public file, or the download was corrupted"
            )
    return target


def public_source(spec: PublicFile, mirror: str | None) -> str:
    """Where to fetch ``spec`` from: its GitHub URL, or the file of that name on ``mirror``."""
    if mirror is None:
        return spec.url
    if "://" in mirror:
        return f"{mirror.rstrip('/')}/{spec.filename}"
    return str(Path(mirror).expanduser() / spec.filename)


def _copy_from(source: str, partial: Path, *, name: str, timeout_s: float) -> None:
    """Copy ``source`` (a URL or a local path) into ``partial``.

    A source that cannot be read becomes a :class:`DownloadError` naming the network, the
    server or the file; a write that fails stays an ``OSError``, for :func:`atomic_path` to
    report as the disk problem it is.
    """
    try:
        reader = open(source, "rb") if "://" not in source else urllib.request.urlopen(source, timeout=timeout_s)
    except (OSError, ValueError) as exc:
        raise _download_error(source, exc, name=name, timeout_s=timeout_s) from None
    with reader, open(partial, "wb") as out:
        while True:
            try:
                block = reader.read(1 << 20)
            except (OSError, http.client.HTTPException) as exc:  # the connection dropped mid-file
                raise _download_error(source, exc, name=name, timeout_s=timeout_s) from None
            if not block:
                return
            out.write(block)


def _download_error(source: str, exc: BaseException, *, name: str, timeout_s: float) -> DownloadError:
    """The one-line error for a source that could not be read: the network, the server or a file."""
    filename = PUBLIC_FILES[name].filename
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    detail = getattr(reason, "strerror", None) or reason
    if "://" not in source or source.lower().startswith("file://"):
        return DownloadError(
            f"cannot read {source}: {detail}; the folder that MOVIEGENRE_DATA_MIRROR names must hold {filename}"
        )
    if isinstance(exc, urllib.error.HTTPError):
        problem = f"the server answered HTTP {exc.code} {exc.reason}"
    elif isinstance(reason, TimeoutError | socket.timeout):
        problem = f"network timed out after {timeout_s:g} s"
    elif isinstance(reason, socket.gaierror) or getattr(reason, "errno", None) in _UNREACHABLE:
        problem = f"network unreachable ({detail})"
    else:
        problem = f"network error ({detail})"
    own_copy = f", or pass a copy you have with {data_option()}" if name == "train" else ""
    return DownloadError(
        f"cannot download {source}: {problem}; check the network, or set MOVIEGENRE_DATA_MIRROR to a "
        f"mirror that holds {filename}{own_copy}"
    )


def input_limit(max_bytes: int | None) -> int:
    """``max_bytes``, or the ``MOVIEGENRE_MAX_INPUT_BYTES`` setting when it is ``None``."""
    if max_bytes is not None:
        return max_bytes
    return get_settings().max_input_bytes  # a bad value raises SettingsError, one line


def read_table(path: str | Path, max_bytes: int | None = None) -> pd.DataFrame:
    """Read a CSV, a zip holding one CSV, or a Parquet file (:mod:`moviegenre.core.tables`).

    The first column becomes the index (the movie IDs); the others are text, except a Parquet
    plot, title or year whose type is not text, kept so that the input contract refuses it.
    At most ``max_bytes`` are read (by default ``MOVIEGENRE_MAX_INPUT_BYTES``).
    """
    path, source = Path(path), str(path)
    limit = input_limit(max_bytes)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return read_parquet_file(path, source, limit)
        if suffix not in CSV_SUFFIXES:
            require_regular_file(path, source)
            raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv, .zip or .parquet")
        return read_csv_file(path, source, limit)
    except OSError as exc:  # permission denied, a file that vanished, a read error...
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def describe_rows(frame: pd.DataFrame, mask: np.ndarray) -> str:
    """Name the rows where ``mask`` is true: "data rows 3 (ID 17), 9 (ID 40) and 12 more"."""
    positions = np.flatnonzero(mask)
    shown = ", ".join(f"{p + 1} (ID {frame.index[p]})" for p in positions[:MAX_ROWS_IN_MESSAGE])
    more = len(positions) - MAX_ROWS_IN_MESSAGE
    word = "row" if len(positions) == 1 else "rows"
    return f"data {word} {shown}" + (f" and {more} more" if more > 0 else "")


def require_columns(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source} lacks required column(s) {missing}; it has {list(frame.columns)} "
            "(the first column is taken as the ID)"
        )


def row_problems(frame: pd.DataFrame, max_plot_chars: int | None = None) -> pd.Series:
    """Per row, why it breaks the input contract (``"field 'plot' is blank; ..."``), or
    ``None`` where the row is valid (:func:`moviegenre.core.items.frame_problems`; plots up to
    ``max_plot_chars``, by default :data:`~moviegenre.core.items.DEFAULT_MAX_PLOT_CHARS`)."""
    problems = frame_problems(frame, max_plot_chars)
    reasons = [None if p is None else f"field '{p.field}' {p.reason}" for p in problems]
    return pd.Series(reasons, index=frame.index, dtype=object)


def refuse_invalid_rows(frame: pd.DataFrame, source: str) -> None:
    """Raise :class:`DataError` naming every row that breaks the input contract, grouped by
    reason, with row numbers and IDs."""
    reasons = row_problems(frame)
    if reasons.isna().all():
        return
    details = [
        f"{describe_rows(frame, (reasons == reason).to_numpy())}: {reason}"
        for reason in dict.fromkeys(reasons.dropna())
    ]
    raise DataError(f"{source}: " + "; ".join(details))


def parse_genres(text: str) -> list[str]:
    """Parse ``"['Comedy', 'Crime']"`` or ``"Comedy|Crime"`` without evaluating code.

    Raises ``ValueError`` with the reason when the text is neither.
    """
    text = text.strip()
    if text.startswith("["):
        if not _GENRE_LIST.match(text):
            raise ValueError("not a list of quoted genre names")
        names = _QUOTED.findall(text)
    else:
        names = [part for part in text.split("|")]
    names = [name.strip() for name in names]
    if not names or any(not name for name in names):
        raise ValueError("empty genre name or empty list")
    unknown = sorted(set(names) - set(GENRES))
    if unknown:
        raise ValueError(f"unknown genre(s) {unknown}")
    return names


def labels_to_matrix(label_lists: Sequence[Sequence[str]], names: Sequence[str]) -> np.ndarray:
    """Label lists as the (n, L) 0/1 label matrix whose columns are ``names``."""
    index = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(label_lists), len(names)), dtype=np.int8)
    for row, chosen in enumerate(label_lists):
        matrix[row, [index[name] for name in chosen]] = 1
    return matrix


def genres_to_matrix(genre_lists: Sequence[Sequence[str]]) -> np.ndarray:
    """Genre lists as the (n, 24) 0/1 label matrix, columns in :data:`GENRES` order."""
    return labels_to_matrix(genre_lists, GENRES)


def _parse_label_column(frame: pd.DataFrame, source: str) -> np.ndarray:
    parsed: list[list[str]] = []
    problems: dict[str, list[int]] = {}
    for position, text in enumerate(frame["genres"].astype(str)):
        try:
            parsed.append(parse_genres(text))
        except ValueError as exc:
            problems.setdefault(str(exc), []).append(position)
            parsed.append([])
    _refuse_problems(frame, source, "genres", problems,
                     f"Expected e.g. \"['Comedy', 'Crime']\" or \"Comedy|Crime\" using the 24 genres {list(GENRES)}; "
                     "to train on labels of your own, say where they are with --label-column, --label-sep, "
                     "--label-columns or --label-prefix")
    return genres_to_matrix(parsed)


def _refuse_problems(frame: pd.DataFrame, source: str, field: str, problems: dict[str, list[int]], hint: str) -> None:
    """Raise one :class:`DataError` naming, per reason, the rows of ``field`` that have it."""
    if not problems:
        return
    details = []
    for reason, positions in problems.items():
        mask = np.zeros(len(frame), dtype=bool)
        mask[positions] = True
        details.append(f"{reason} in {describe_rows(frame, mask)}")
    raise DataError(f"{source}: field {field!r} could not be read: " + "; ".join(details)
                    + (f". {hint}" if hint else ""))


def parse_label_list(text: str, sep: str | None) -> list[str]:
    """The label names of one list-column field, tidied (:func:`~moviegenre.core.labels.label_name`).

    With ``sep``, the names separated by it; else a JSON list or a Python-list text of strings,
    read as data, never run (``ast.literal_eval`` of a bounded text). An empty list is a movie
    with none of the labels. Raises ``ValueError`` with the reason.
    """
    text = text.strip()
    if not text:
        raise ValueError("blank (a movie with none of the labels is written [] in a list column)")
    if sep is not None:
        names: object = text.split(sep)
    else:
        if not (text.startswith("[") and text.endswith("]")):
            raise ValueError("not a list such as [\"Drama\", \"Crime\"] (or pass the separator with --label-sep)")
        if len(text) > MAX_LABEL_FIELD_CHARS:
            raise ValueError(f"a list of over {MAX_LABEL_FIELD_CHARS:,} characters")
        try:
            names = json.loads(text)
        except ValueError:
            try:
                names = ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                raise ValueError("not a JSON or Python list of quoted names") from None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError("not a list of quoted names")
    return [label_name(name) for name in names]


def _list_labels(raw: pd.DataFrame, source: str, spec: LabelSpec,
                 known: Sequence[str] | None) -> tuple[np.ndarray, tuple[str, ...]]:
    column = spec.list_column
    parsed: list[list[str]] = []
    problems: dict[str, list[int]] = {}
    for position, text in enumerate(raw[column].astype(str)):
        try:
            parsed.append(parse_label_list(text, spec.sep))
        except ValueError as exc:
            problems.setdefault(str(exc), []).append(position)
            parsed.append([])
    _refuse_problems(raw, source, column, problems, "")
    used = {name for names in parsed for name in names}
    names = tuple(known) if known is not None else tuple(sorted_labels(used))
    if known is not None:
        unknown = sorted_labels(used - set(known))
        if unknown:
            rows = np.array([any(name in unknown for name in row) for row in parsed])
            raise DataError(f"{source}: field {column!r} holds label(s) {unknown[:10]} that the model does not "
                            f"have, in {describe_rows(raw, rows)}; the model's labels are {list(known)[:30]}")
    return labels_to_matrix(parsed, names), names


def _flag_labels(raw: pd.DataFrame, source: str, spec: LabelSpec,
                 known: Sequence[str] | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels from 0/1 columns: the named ones, or those starting with the prefix."""
    if spec.columns:
        columns = list(spec.columns)
        missing = [c for c in columns if c not in raw.columns]
        if missing:
            raise DataError(f"{source} lacks label column(s) {missing[:10]}; it has columns {list(raw.columns)}")
        names = {column: column for column in columns}
    else:
        prefix = spec.prefix or ""
        columns = [c for c in raw.columns if str(c).startswith(prefix)]
        if not columns:
            raise DataError(f"{source} has no column whose name starts with {prefix!r}; it has columns "
                            f"{list(raw.columns)} (the first column is taken as the ID)")
        names = {column: str(column)[len(prefix):] for column in columns}
    try:
        tidy = {column: label_name(name) for column, name in names.items()}
    except ValueError as exc:
        raise DataError(f"{source}: a label column's name is not a label name: {exc}") from None
    repeated = sorted(name for name, n in Counter(tidy.values()).items() if n > 1)
    if repeated:
        raise DataError(f"{source}: several label columns give the label(s) {repeated[:5]}")
    by_name = {name: column for column, name in tidy.items()}
    if known is not None:
        absent, extra = [n for n in known if n not in by_name], [n for n in by_name if n not in set(known)]
        problems = ([f"no column for {absent[:10]}"] if absent else []) + (
            [f"columns for label(s) the model does not have: {extra[:10]}"] if extra else [])
        if problems:
            raise DataError(f"{source}: its label columns do not match the model's labels: " + "; ".join(problems))
    label_names = tuple(known) if known is not None else tuple(tidy.values())
    matrix = np.zeros((len(raw), len(label_names)), dtype=np.int8)
    for j, name in enumerate(label_names):
        column = by_name[name]
        text = raw[column].astype(str).str.strip().str.lower()
        values = text.map(_FLAGS)
        bad = values.isna().to_numpy()
        if bad.any():
            shown = sorted(set(raw[column].astype(str)[bad]))[:3]
            raise DataError(f"{source}: field {str(column)!r} must hold 0 or 1, not {shown}, in "
                            f"{describe_rows(raw, bad)}")
        matrix[:, j] = values.to_numpy(dtype=np.int8)
    return matrix, label_names


def read_labels(raw: pd.DataFrame, source: str, spec: LabelSpec,
                known: Sequence[str] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """The 0/1 label matrix of ``raw`` and its labels, read as ``spec`` says.

    ``known`` are a model's labels (to evaluate it): the matrix then has their columns, in their
    order, and a label the model does not have is an error naming it and its rows.
    """
    if spec.course:
        require_columns(raw, ["genres"], source)
        if known is not None and tuple(known) != GENRES:
            raise DataError(f"{source}: the model has its own labels {list(known)[:10]}, not the 24 genres; say "
                            "where the file keeps them with --label-column, --label-sep, --label-columns or "
                            "--label-prefix")
        return _parse_label_column(raw, source), GENRES
    if spec.columns or spec.prefix is not None:
        return _flag_labels(raw, source, spec, known)
    require_columns(raw, [spec.list_column], source)
    return _list_labels(raw, source, spec, known)


def load_movies(path: str | Path, *, labelled: bool, labels: LabelSpec | None = None,
                known: Sequence[str] | None = None) -> Movies:
    """Read and validate a dataset file; labelled data must have its labels where ``labels``
    says (by default the course's ``genres`` column; ``known``: see :func:`read_labels`).

    Every row must keep the input contract (:mod:`moviegenre.core.items`): a row that breaks it is
    an error here (training and evaluation need every row), where batch scoring lists it as a
    reject instead (see :mod:`moviegenre.batch.scoring`).
    """
    path = Path(path)
    source = str(path)
    spec = labels or LabelSpec()
    raw = read_table(path)
    if raw.empty:
        raise DataError(f"{source} has a header but no rows")
    require_columns(raw, ["plot"], source)
    refuse_invalid_rows(raw, source)
    frame = to_frame(raw)
    if not labelled:
        return Movies(frame=frame, source=source, sha256=sha256_of(path))
    matrix, names = read_labels(raw, source, spec, known)
    return Movies(frame=frame, source=source, sha256=sha256_of(path), labels=matrix, label_names=names,
                  label_spec=spec)


def write_csv_atomically(frame: pd.DataFrame, path: Path, **kwargs) -> None:
    """Write ``frame`` as CSV to a temporary sibling, then rename it into place."""
    with atomic_write(path) as handle:
        frame.to_csv(handle, **kwargs)


def split_file(path: str | Path, out_dir: Path, *, test_size: float, seed: int,
               labels: LabelSpec | None = None) -> tuple[Path, Path]:
    """Split a labelled file (its labels where ``labels`` says) into ``train.csv`` and
    ``heldout.csv`` (rows shuffled with ``seed``), keeping every column as it was, so a model can
    be evaluated on movies it never saw.
    """
    if not 0 < test_size < 1:
        raise DataError(f"test size must be between 0 and 1, got {test_size}")
    load_movies(path, labelled=True, labels=labels)  # validate before writing anything
    raw = read_table(path)
    order = np.random.default_rng(seed).permutation(len(raw))
    cut = len(raw) - max(1, round(len(raw) * test_size))
    train_path, heldout_path = out_dir / "train.csv", out_dir / "heldout.csv"
    write_csv_atomically(raw.iloc[np.sort(order[:cut])], train_path)
    write_csv_atomically(raw.iloc[np.sort(order[cut:])], heldout_path)
    return train_path, heldout_path


def resolve_training_data(path: str | Path | None, data_home: Path) -> Path:
    """The user's file when given, else the public training file (downloaded once)."""
    return Path(path) if path is not None else fetch_public("train", data_home)
