"""Batch inputs cut into pieces: what each engine reads, checks and scores, piece by piece.

Planning (:func:`plan_inputs`) runs where the command runs and reads no row. It expands the
inputs (local paths and globs, or fsspec URLs such as ``s3://bucket/catalogue/*.parquet``),
reads each Parquet file's footer, and cuts the inputs into :class:`Piece` s in input order: a
Parquet file by row groups (consecutive small ones merged up to ``piece_rows`` rows), a CSV or
zip file whole, to be cut later.

Cutting a CSV file (:func:`cut_piece`) runs where pieces are scored (on a Dask worker, not in
the command's process): one streaming pass parses the file, with the same parser that reads
it, and notes the byte offset where every ``piece_rows``-th row starts
(:func:`~moviegenre.core.tables.csv_spans`), so a quoted plot's line breaks never split a row.
Each span becomes a piece that any worker reads by seeking to its offset. A zip member cannot
be read from the middle, so the pass also copies the unzipped CSV into the output's staging
directory, and its pieces are read from that copy. Reading a piece (:func:`read_piece`) and
sorting its rows into movies to score and rejects (:func:`split_rejects`) run wherever the
piece is scored: the same code in this process (the local engine) and on a Dask worker, so
every engine gives the same pieces and the same output.

An input may not hold a column named like one of the output's (:func:`refuse_clashing_columns`:
a model's ``p_<label>`` key, such as a file of earlier scores given back as input): planning
reads every input's column names (a Parquet footer, a CSV's header line, never its rows) and
refuses such a file before anything is written, whichever engine scores it.

IDs keep their type: a Parquet ID column of integers stays integers in the output; every other
ID is text (a CSV's IDs are text: they may be ``007``). When the inputs disagree, all IDs are
written as text, so that every part of a Parquet output has one schema.
"""

from __future__ import annotations

import glob
import os
import posixpath
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from moviegenre.batch.outputs import ID_COLUMN, PartWriter, url_to_fs
from moviegenre.core.data import require_columns, row_problems
from moviegenre.core.errors import DataError
from moviegenre.core.items import to_frame
from moviegenre.core.parquet import check_parquet, parquet_errors, parquet_frame, pyarrow_parquet
from moviegenre.core.tables import (
    CSV_SUFFIXES,
    CheckedBytes,
    CsvSpan,
    csv_frames,
    csv_spans,
    file_opener,
    local_opener,
    read_header,
    require_regular_file,
)

#: Rows of a piece: a CSV file is cut into pieces of this many rows, and consecutive Parquet row
#: groups are read as one piece up to this many, so that a file of many small row groups is not
#: one task per group. The default of ``MOVIEGENRE_PIECE_ROWS``.
PIECE_ROWS = 5_000


@dataclass(frozen=True)
class Piece:
    """One unit of work: a span of rows of a CSV file (or of the CSV in a zip), some row groups
    of a Parquet file, or a whole CSV or zip file not yet cut."""

    #: Position in input order; names the part files.
    number: int
    #: The input as the user named it (after glob expansion), for messages and rejects.
    source: str
    #: Where any process opens it: an absolute local path or an fsspec URL.
    url: str
    #: Row groups to read, for Parquet; ``None`` for a whole CSV or zip file.
    row_groups: tuple[int, ...] | None = None
    #: Rows of the file before this piece (0-based), so rejects are numbered within the file.
    first_row: int = 0
    #: The rows of a CSV file this piece holds; ``None`` for a Parquet piece or an uncut file.
    span: CsvSpan | None = None
    #: Rows in the piece, once known (from a Parquet footer, or by cutting a CSV file).
    rows: int | None = None

    @property
    def uncut(self) -> bool:
        """A whole CSV or zip file, to be cut (:func:`cut_piece`) before it is scored."""
        return self.row_groups is None and self.span is None


@dataclass(frozen=True)
class Plan:
    files: tuple[str, ...]
    pieces: tuple[Piece, ...]
    #: Whether every input's IDs are integers (Parquet integer columns), to be kept so.
    integer_ids: bool


def is_url(text: str) -> bool:
    """Whether ``text`` names a file through an fsspec protocol (``s3://``, ``memory://``...)."""
    return "://" in text


def expand_inputs(patterns: Sequence[str | os.PathLike]) -> list[str]:
    """Inputs with globs expanded (matches sorted); a glob that matches no file is an error."""
    sources: list[str] = []
    for pattern in patterns:
        text = str(pattern)
        matches = _expand_url(text) if is_url(text) else _expand_local(text)
        sources.extend(matches)
    if not sources:
        raise DataError("no input files given")
    return sources


def _expand_local(pattern: str) -> list[str]:
    text = os.path.expanduser(pattern)
    if glob.has_magic(text):
        matches = sorted(m for m in glob.glob(text, recursive=True) if os.path.isfile(m))
        if not matches:
            raise DataError(f"no files match {pattern!r}")
        return [os.path.normpath(m) for m in matches]
    if not os.path.exists(text):
        raise DataError(f"{os.path.normpath(text)} does not exist")
    if os.path.isdir(text):
        return [os.path.normpath(m) for m in _data_files(url_to_fs(text, reading=True)[0], text, pattern)]
    require_regular_file(text, os.path.normpath(text))  # a FIFO or a device would block or never end
    return [os.path.normpath(text)]


def _expand_url(pattern: str) -> list[str]:
    fs, path = url_to_fs(pattern, reading=True)
    try:
        if glob.has_magic(path):
            matches = sorted(p for p in fs.glob(path) if fs.isfile(p))
            if not matches:
                raise DataError(f"no files match {pattern!r}")
            return [fs.unstrip_protocol(m) for m in matches]
        if not fs.exists(path):
            raise DataError(f"{pattern} does not exist")
        if fs.isdir(path):
            return [fs.unstrip_protocol(m) for m in _data_files(fs, path, pattern)]
    except OSError as exc:
        raise DataError(f"cannot read {pattern}: {exc}") from None
    return [pattern]


def _data_files(fs, path: str, pattern: str) -> list[str]:
    """The data files of a dataset directory (a Spark or Dask Parquet output, say), sorted;
    names starting with ``_`` or ``.`` (``_SUCCESS``, hidden files) are not data."""
    files = sorted(
        found for found in fs.find(path)
        if not any(part.startswith(("_", ".")) for part in found[len(fs._strip_protocol(path)):].split("/"))
    )  # fmt: skip
    if not files:
        raise DataError(f"{pattern} is a directory with no data files in it")
    return files


def refuse_clashing_columns(names: Sequence[object], reserved: Sequence[str], source: str) -> None:
    """Raise :class:`DataError` if a column of ``source`` (``names``, the ID column's included)
    is named like one of the output's columns ``reserved`` (a model's ``p_<label>`` keys), as
    the file is read: surrounding white space removed, compared in Unicode NFC."""
    if not reserved:
        return
    taken = set(reserved)
    stripped = dict.fromkeys(str(name).strip() for name in names if name is not None)
    clashing = [name for name in stripped if unicodedata.normalize("NFC", name) in taken]
    if clashing:
        more = f" and {len(clashing) - 10} more" if len(clashing) > 10 else ""
        shown = ", ".join(repr(name) for name in clashing[:10]) + more
        raise DataError(
            f"{source}: column(s) {shown} clash with the model's output columns (ID then p_<label>); "
            "rename or drop them before scoring"
        )


def plan_inputs(
    patterns: Sequence[str | os.PathLike], max_bytes: int, piece_rows: int = PIECE_ROWS, reserved: Sequence[str] = ()
) -> Plan:
    """Expand the inputs and cut them into pieces; read no row, only Parquet footers and CSV
    header lines (a Parquet file of more than ``max_bytes`` uncompressed is refused here, and
    any file with a column named like one of the output's columns ``reserved``: see
    :func:`refuse_clashing_columns`). A CSV or zip file is one uncut piece."""
    sources = expand_inputs(patterns)
    pieces: list[Piece] = []
    integer_ids: list[bool] = []
    for source in sources:
        url = source if is_url(source) else os.path.abspath(source)
        if _suffix(url) == ".parquet":
            file_pieces, integers = _parquet_pieces(source, url, len(pieces), max_bytes, piece_rows, reserved)
        else:
            file_pieces, integers = [Piece(len(pieces), source, url)], False
            if reserved:
                refuse_clashing_columns(_csv_columns(file_pieces[0], max_bytes), reserved, source)
        pieces.extend(file_pieces)
        integer_ids.append(integers)
    return Plan(tuple(sources), tuple(pieces), all(integer_ids))


def _suffix(url: str) -> str:
    return posixpath.splitext(url.rstrip("/"))[1].lower()


def _csv_columns(piece: Piece, max_bytes: int) -> list[str]:
    """The column names of a CSV or zip piece's file, from its header line alone."""
    with _csv_opener(piece)() as handle:
        return read_header(CheckedBytes(handle, piece.source, max_bytes), piece.source)


def _parquet_pieces(
    source: str, url: str, first_number: int, max_bytes: int, piece_rows: int, reserved: Sequence[str] = ()
) -> tuple[list[Piece], bool]:
    """Pieces of row groups of ``source``, and whether its IDs are integers."""
    pq = pyarrow_parquet()
    import pyarrow as pa

    fs, path = url_to_fs(url, reading=True)
    with parquet_errors(source), fs.open(path, "rb") as handle:
        meta = pq.ParquetFile(handle).metadata
    schema = check_parquet(meta, source, max_bytes)
    require_columns(pd.DataFrame(columns=schema.names[1:]), ["plot"], source)
    refuse_clashing_columns(schema.names, reserved, source)
    if meta.num_rows == 0:
        raise DataError(f"{source} has a header but no rows; nothing to score")
    pieces, groups, rows, first_row = [], [], 0, 0
    for group in range(meta.num_row_groups):
        group_rows = meta.row_group(group).num_rows
        if group_rows == 0:
            continue
        groups.append(group)
        rows += group_rows
        if rows >= piece_rows or group == meta.num_row_groups - 1:
            pieces.append(Piece(first_number + len(pieces), source, url, tuple(groups), first_row, rows=rows))
            groups, first_row, rows = [], first_row + rows, 0
    if groups:
        pieces.append(Piece(first_number + len(pieces), source, url, tuple(groups), first_row, rows=rows))
    return pieces, pa.types.is_integer(schema.field(0).type)


def read_piece(piece: Piece, max_bytes: int, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The rows of ``piece``, ``chunk_rows`` at a time, as :func:`~moviegenre.core.data.read_table`
    gives a file's: the first column is the index (the IDs, an integer Parquet column kept as
    integers), the others text (or, for a plot, title or year of another type, its values)."""
    if piece.row_groups is not None:
        yield from _read_parquet_piece(piece, chunk_rows)
        return
    rows = 0
    for frame in csv_frames(_csv_opener(piece), piece.source, max_bytes, chunk_rows, piece.span):
        rows += len(frame)
        if rows == 0:
            raise DataError(f"{piece.source} has a header but no rows; nothing to score")
        yield frame


def cut_piece(piece: Piece, piece_rows: int, max_bytes: int, writer: PartWriter) -> list[Piece]:
    """An uncut CSV or zip piece as pieces of ``piece_rows`` rows (numbered from the piece's own
    number; the caller renumbers them), found by one streaming pass over the file. A zip's CSV
    is copied unzipped into ``writer``'s staging directory as it is read, and its pieces read
    from there."""
    if not piece.uncut:
        return [piece]
    opener = _csv_opener(piece)
    if _suffix(piece.url) != ".zip":
        spans = csv_spans(opener, piece.source, max_bytes, piece_rows)
        url = piece.url
    else:
        with writer.staged_input(piece.number) as (url, copy):
            spans = csv_spans(opener, piece.source, max_bytes, piece_rows, copy_to=copy)
    if not spans:  # read whole, it says what is wrong with it
        return [replace(piece, rows=0)]
    return [
        replace(piece, number=piece.number + position, url=url, first_row=span.rows_before, span=span, rows=span.rows)
        for position, span in enumerate(spans)
    ]


def _csv_opener(piece: Piece):
    suffix = _suffix(piece.url)
    if suffix not in CSV_SUFFIXES:
        raise DataError(f"{piece.source}: unsupported file type {suffix!r}; use .csv, .zip or .parquet")
    if not is_url(piece.url):  # absolute: a worker's working directory is not ours
        require_regular_file(piece.url, piece.source)
        return local_opener(Path(piece.url), piece.source)
    if suffix == ".zip":
        raise DataError(f"{piece.source}: a zip input must be a local file; give the CSV or Parquet file instead")
    fs, path = url_to_fs(piece.url, reading=True)
    return file_opener(lambda: fs.open(path, "rb"), piece.source)


def _read_parquet_piece(piece: Piece, chunk_rows: int) -> Iterator[pd.DataFrame]:
    pq = pyarrow_parquet()
    import pyarrow as pa

    fs, path = url_to_fs(piece.url, reading=True)
    first_row = piece.first_row
    with parquet_errors(piece.source), fs.open(path, "rb") as handle:
        batches = pq.ParquetFile(handle).iter_batches(chunk_rows, row_groups=list(piece.row_groups))
        while (batch := next(batches, None)) is not None:
            frame = parquet_frame(pa.Table.from_batches([batch]), piece.source, first_row)
            first_row += len(frame)
            yield frame


def split_rejects(
    raw: pd.DataFrame, piece: Piece, first_row: int, max_plot_chars: int, reserved: Sequence[str] = ()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(movies to score, rejected rows with ID, source, row and reason) of rows of a piece, the
    first of them row ``first_row`` (0-based) of the file, plots of up to ``max_plot_chars``
    characters being valid. A column named like one of ``reserved`` is refused, as in planning."""
    require_columns(raw, ["plot"], piece.source)
    refuse_clashing_columns([raw.index.name, *raw.columns], reserved, piece.source)
    reasons = row_problems(raw, max_plot_chars)
    invalid = reasons.notna().to_numpy()
    rejects = pd.DataFrame(
        {
            ID_COLUMN: raw.index[invalid],
            "source": piece.source,
            "row": np.flatnonzero(invalid) + 1 + first_row,
            "reason": reasons[invalid].to_numpy(),
        }
    )
    return to_frame(raw[~invalid], max_plot_chars), rejects
