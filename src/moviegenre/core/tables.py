"""Reading the CSV files users hand the product: a CSV, or a zip holding one CSV (a Parquet
file: :mod:`moviegenre.core.parquet`).

Every failure of a file is one :class:`~moviegenre.core.errors.DataError` that names the file,
and the line, data row, zip member or column where that is known; no reader's own exception
reaches the caller. Reading is bounded whatever the file claims:

- only regular files are opened (a device, a FIFO, or a symlink to one, is refused by name);
- the bytes of a CSV (once unzipped) and a Parquet file's uncompressed size are checked
  against ``max_bytes`` (``MOVIEGENRE_MAX_INPUT_BYTES``) as they are read, never trusted from
  a header, and CSV bytes are streamed to the parser a block at a time, checked as UTF-8 on
  the way, so a small zip that unpacks to gigabytes stops at the bound;
- the header is read first, from at most :data:`MAX_HEADER_BYTES`, and refused past
  :data:`MAX_COLUMNS` columns, in time linear in its length.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import stat
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pandas as pd

from moviegenre.core.errors import DataError

#: The most columns a file's header may have: room for a model's 1,000 label columns and more.
MAX_COLUMNS = 2_000
#: The longest header line, in bytes: room for 1,000 label columns of 100-character names.
MAX_HEADER_BYTES = 512 * 1024
#: The default of ``MOVIEGENRE_MAX_INPUT_BYTES``: the most bytes one input file may hold once
#: decompressed (a CSV's bytes, a zip member's, a Parquet file's uncompressed size).
DEFAULT_MAX_INPUT_BYTES = 2 * 1024**3
CSV_SUFFIXES = (".csv", ".zip", ".txt")
_BLOCK_BYTES = 1 << 20

#: Opens the bytes of a CSV file (or of the CSV inside a zip), once per call.
Opener = Callable[[], AbstractContextManager[IO[bytes]]]


def require_regular_file(path: str | os.PathLike, source: str) -> None:
    """Refuse, before opening it, anything but a regular file (or a symlink to one)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataError(f"{source} does not exist") from None
    except OSError as exc:
        raise DataError(f"cannot read {source}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise DataError(f"{source} is a directory; expected a .csv, .zip or .parquet file")
    if not stat.S_ISREG(mode):
        raise DataError(f"{source} is not a regular file (a device, a FIFO or a socket); give a data file")


def local_opener(path: Path, source: str) -> Opener:
    """An :data:`Opener` of a local ``.csv``/``.txt`` file, or of the one CSV in a ``.zip``."""
    if path.suffix.lower() != ".zip":
        return file_opener(lambda: open(path, "rb"), source)
    return lambda: _zip_member(path, source)


def file_opener(open_file: Callable[[], IO[bytes]], source: str) -> Opener:
    """An :data:`Opener` of what ``open_file`` opens (a local file, an fsspec file), its
    ``OSError`` a :class:`DataError` naming ``source``."""

    @contextmanager
    def opened() -> Iterator[IO[bytes]]:
        try:
            handle = open_file()
        except OSError as exc:
            raise DataError(f"cannot read {source}: {exc.strerror or exc}") from None
        with handle:
            yield handle

    return opened


@contextmanager
def _zip_member(path: Path, source: str) -> Iterator[IO[bytes]]:
    try:
        archive = zipfile.ZipFile(path)
    except OSError as exc:
        raise DataError(f"cannot read {source}: {exc.strerror or exc}") from None
    except Exception as exc:  # BadZipFile, EOFError, ValueError... for a damaged archive
        raise DataError(f"{source} is not a readable zip file ({exc})") from None
    with archive:
        members = [m for m in archive.infolist() if m.filename.lower().endswith(".csv")]
        if len(members) != 1:
            names = [m.filename for m in archive.infolist()]
            raise DataError(f"{source} must hold exactly one .csv file; it holds {names}")
        member = members[0]
        where = f"{source}: member {member.filename}"
        if member.flag_bits & 0x1:
            raise DataError(f"{where} is encrypted; give an unencrypted zip or the CSV itself")
        try:
            handle = archive.open(member)
        except NotImplementedError:
            raise DataError(
                f"{where} uses compression method {member.compress_type}, which cannot be read; "
                "zip it again with deflate"
            ) from None
        except Exception as exc:
            raise DataError(f"{where} cannot be read ({exc})") from None
        with handle:
            yield handle


class CheckedBytes(io.RawIOBase):
    """The bytes of a CSV as the parser reads them: counted against ``max_bytes``, checked as
    UTF-8 (an error names the byte, its offset and its line), a leading BOM removed.

    The first :data:`MAX_HEADER_BYTES` (plus one) are read at once, for the header. Given a
    ``span``, ``handle`` is already at its start: only its bytes are read, no header, and
    offsets and lines in messages count from the file's start.
    """

    def __init__(self, handle: IO[bytes], source: str, max_bytes: int, span: CsvSpan | None = None):
        super().__init__()
        self._handle, self._source, self._max = handle, source, max_bytes
        self.max_bytes = max_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._read_so_far = 0
        self._offset, self._newlines = (span.start, span.lines_before) if span else (0, 0)
        self._left = None if span is None or span.end is None else span.end - span.start
        self._eof = False
        #: Bytes of the BOM the file starts with (0 or 3).
        self.bom = 0
        self.more, self.head_text, self._pending = False, "", b""
        if span is not None:
            return
        head = b""
        while len(head) <= MAX_HEADER_BYTES and not self._eof:
            head += self._read(MAX_HEADER_BYTES + 1 - len(head))
        #: Whether the file goes on past the bytes read for the header.
        self.more = len(head) > MAX_HEADER_BYTES
        if head.startswith(codecs.BOM_UTF8):
            head, self._offset = head[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
            self.bom = len(codecs.BOM_UTF8)
        #: The text of the bytes read for the header.
        self.head_text = self._check(head, final=self._eof)
        self._pending = head

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._pending and not self._eof:
            data = self._read(len(buffer))
            self._check(data, final=self._eof)
            self._pending = data
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _read(self, size: int) -> bytes:
        if self._left is not None:
            size = min(size, self._left)
            if not size:
                self._eof = True
                return b""
        try:
            data = self._handle.read(size)
        except OSError as exc:
            raise DataError(f"cannot read {self._source}: {exc.strerror or exc}") from None
        except Exception as exc:  # a damaged zip member: a bad CRC, corrupt deflate data...
            raise DataError(f"{self._source} could not be read to the end ({exc})") from None
        self._eof = not data
        self._read_so_far += len(data)
        if self._left is not None:
            self._left -= len(data)
        if self._read_so_far > self._max:
            raise DataError(
                f"{self._source} holds more than {self._max:,} bytes (once unzipped), the limit "
                "MOVIEGENRE_MAX_INPUT_BYTES; split it into smaller files or raise the limit"
            )
        return data

    def _check(self, data: bytes, final: bool) -> str:
        waiting = self._decoder.getstate()[0]  # the start of a character cut by the last block
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            joined = waiting + data
            line = self._newlines + joined[: exc.start].count(b"\n") + 1
            raise DataError(
                f"{self._source} is not valid UTF-8: byte 0x{joined[exc.start]:02x} at offset "
                f"{self._offset - len(waiting) + exc.start} (line {line}); re-save the file as UTF-8"
            ) from None
        self._offset += len(data)
        self._newlines += data.count(b"\n")
        return text


def read_header(stream: CheckedBytes, source: str) -> list[str]:
    """The header's column names, checked from the first bytes alone: not too long or too wide,
    no name twice."""
    lines = list(io.StringIO(stream.head_text, newline=""))
    reader = csv.reader(lines)
    try:
        header = next((record for record in reader if not _blank(record)), None)
    except csv.Error as exc:
        raise DataError(f"{source} is not a well-formed CSV: {exc} (line {reader.line_num})") from None
    if stream.more and (header is None or (reader.line_num == len(lines) and not lines[-1].endswith(("\n", "\r")))):
        raise DataError(f"{source}: the header line is longer than {MAX_HEADER_BYTES:,} bytes, the limit")
    if header is None:
        raise DataError(f"{source} is empty; expected a header line and at least one row")
    if len(header) > MAX_COLUMNS:
        raise DataError(f"{source}: the header has {len(header):,} columns; the limit is {MAX_COLUMNS:,}")
    refuse_duplicate_columns([name.strip() for name in header], source)
    return header


def refuse_duplicate_columns(names: list[str], source: str) -> None:
    # pandas would rename a second 'plot' to 'plot.1' and read the first silently: refuse instead.
    duplicates = sorted(name for name, count in Counter(names).items() if name and count > 1)
    if duplicates:
        raise DataError(f"{source}: column(s) {duplicates} appear more than once in the header; keep one of each")


def _blank(record: list[str]) -> bool:
    """An empty or whitespace-only line, skipped like pandas skips it."""
    return not record or (len(record) == 1 and not record[0].strip())


@dataclass(frozen=True)
class CsvSpan:
    """A run of whole rows of a CSV file, found by :func:`csv_spans`: where it starts and ends
    (byte offsets in the file, after its header), how many lines and data rows come before it."""

    start: int
    #: ``None``: to the end of the file.
    end: int | None
    lines_before: int
    rows_before: int
    #: The data rows it holds.
    rows: int


def csv_frames(
    open_bytes: Opener, source: str, max_bytes: int, chunk_rows: int | None = None, span: CsvSpan | None = None
) -> Iterator[pd.DataFrame]:
    """The rows of a CSV as frames of up to ``chunk_rows`` rows (one frame when ``None``), every
    column text, the first one the index (the IDs). A header with no rows is one empty frame.
    Given a ``span`` (from :func:`csv_spans`), only its rows, read from its first byte on.

    Python's csv module reads it (as fast as pandas for text, and it says where each row
    starts): a row with more or fewer fields than the header, or a quote never closed, is an
    error naming its line.
    """
    with open_bytes() as handle:
        stream = CheckedBytes(handle, source, max_bytes)
        header = read_header(stream, source)
        if span is not None:
            _seek(handle, span.start, source)
            stream = CheckedBytes(handle, source, max_bytes, span)
        rows: list[list[str]] = []
        chunks = 0
        for _, record in _data_records(stream, source, header, span):
            rows.append(record)
            if chunk_rows is not None and len(rows) == chunk_rows:
                yield _frame(rows, header)
                rows, chunks = [], chunks + 1
        if rows or not chunks:
            yield _frame(rows, header)


def csv_spans(
    open_bytes: Opener, source: str, max_bytes: int, rows: int, copy_to: IO[bytes] | None = None
) -> list[CsvSpan]:
    """Cut a CSV into spans of ``rows`` data rows (the last one shorter), in one streaming pass
    that parses it as :func:`csv_frames` does, so a quoted field's line breaks never cut a row and
    a malformed row fails here, with the same message. ``copy_to`` receives every byte read (a
    zip member's, unzipped, to be read again by offset). A file with no rows has no span."""
    spans: list[CsvSpan] = []
    with open_bytes() as handle:
        source_handle = handle if copy_to is None else _Copying(handle, copy_to)
        stream = CheckedBytes(source_handle, source, max_bytes)
        header = read_header(stream, source)
        count = 0
        for (offset, line), _ in _data_records(stream, source, header):
            if count % rows == 0:
                spans.append(CsvSpan(stream.bom + offset, None, line - 1, count, 0))
            count += 1
    ends = [span.start for span in spans[1:]] + [None] * bool(spans)
    return [
        CsvSpan(span.start, end, span.lines_before, span.rows_before, min(rows, count - span.rows_before))
        for span, end in zip(spans, ends, strict=True)
    ]


class _Copying(io.RawIOBase):
    """A file's bytes, each block also written to ``copy``."""

    def __init__(self, handle: IO[bytes], copy: IO[bytes]):
        super().__init__()
        self._handle, self._copy = handle, copy

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._copy.write(data)
        return data


def _seek(handle: IO[bytes], offset: int, source: str) -> None:
    try:
        handle.seek(offset)
    except OSError as exc:
        raise DataError(f"cannot read {source}: {exc.strerror or exc}") from None


def _data_records(
    stream: CheckedBytes, source: str, header: list[str], span: CsvSpan | None = None
) -> Iterator[tuple[tuple[int, int], list[str]]]:
    """((byte offset after the BOM, line) where it starts, fields) of each data row of ``stream``:
    blank lines and the header skipped, a row of the wrong width or an unclosed quote an error."""
    # A plot may be longer than csv's default field limit (128 KiB); the byte bound holds anyway.
    csv.field_size_limit(max(csv.field_size_limit(), min(stream.max_bytes, 2**31 - 1)))
    first_line = span.lines_before if span else 0
    lines = _Lines(io.TextIOWrapper(io.BufferedReader(stream, _BLOCK_BYTES), "utf-8", newline=""), first_line)
    records = csv.reader(lines)
    last: list[str] | None = None  # the lines of the last row
    started = span is not None  # a span starts after the header
    while True:
        offset, start = lines.offset, lines.start_record()
        try:
            record = next(records, None)
        except csv.Error as exc:
            raise DataError(f"{source} is not a well-formed CSV: {exc} (line {lines.number})") from None
        if record is None:
            break
        if _blank(record):
            continue
        if not started:  # the header, checked already
            started = True
            continue
        if len(record) != len(header):
            raise DataError(f"{source} is not a well-formed CSV: line {start} has {len(record)} field(s); "
                            f"the header has {len(header)}")  # fmt: skip
        last = lines.record
        yield (offset, start), record
    if last is not None and _quote_left_open(last):
        raise DataError(
            f"{source} is not a well-formed CSV: the row starting on line {lines.number - len(last) + 1} "
            "opens a quote that is never closed"
        )


class _Lines:
    """The lines of a text, counted, with the lines of the record being read and the UTF-8
    bytes read so far."""

    def __init__(self, text: IO[str], number: int = 0):
        self._text = text
        #: Lines read so far (including any before the text, for a span).
        self.number = number
        #: Bytes read so far, from the text's start.
        self.offset = 0
        self.record: list[str] = []

    def start_record(self) -> int:
        """Start keeping a new record's lines; the line it starts on."""
        self.record = []
        return self.number + 1

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._text.readline()
        if not line:
            raise StopIteration
        self.number += 1
        self.offset += len(line) if line.isascii() else len(line.encode("utf-8"))
        self.record.append(line)
        return line


def _quote_left_open(record_lines: list[str]) -> bool:
    """Whether these lines (the last record) end inside a quoted field: the csv module reads
    them to the end of the file as one field, without a word."""
    try:
        for _ in csv.reader(record_lines, strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _frame(rows: list[list[str]], header: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=range(len(header)), dtype=str)
    frame = frame.set_index(0)
    frame.index = frame.index.astype(str)
    frame.index.name = header[0] if header[0].strip() else None
    frame.columns = [name.strip() for name in header[1:]]
    return frame


def read_csv_file(path: Path, source: str, max_bytes: int) -> pd.DataFrame:
    """A local CSV, or the one CSV in a zip, whole."""
    require_regular_file(path, source)
    with closing(csv_frames(local_opener(path, source), source, max_bytes)) as frames:
        return next(frames)
