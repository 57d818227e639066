"""Where batch scores go: one CSV file, or a directory of Parquet part files.

The output path chooses the format: ``OUT.csv`` is one CSV file; ``OUT.parquet`` or a path
with no suffix is a Parquet directory holding ``part-000000.parquet``, ``part-000001.parquet``...
(one per piece of the input, in input order) and, once complete, a ``_SUCCESS`` marker, as
Spark and Hadoop write it. Both have the columns ``ID`` then the model's probability keys
(``p_<label>``, :attr:`~moviegenre.model.genre_model.GenreModel.probability_keys`, in the model's
order: the 24 ``p_`` genres of the default model); an ID keeps its type (integer or text).
Rejected rows go to ``OUT.rejects.csv``: ID, source, row, reason. Paths may be local or fsspec URLs (``s3://bucket/scores.parquet``).

The output is built in a hidden staging directory beside ``OUT`` (:class:`Staging`), on the
same filesystem. Whichever process scores a piece writes its part there (:class:`PartWriter`),
under a temporary name renamed when complete, so a piece scored twice (its worker died and the
piece was retried) leaves one whole part. Only when every piece is in does the process running
the command commit: a Parquet output is the staging directory itself, ``_SUCCESS`` written
last; a CSV output is a header and the parts copied in order, a block at a time. An interrupted
run leaves nothing that looks finished, and a finished output is replaced only by a finished
one. A Parquet directory is only replaced if it is empty or a finished output (it has
``_SUCCESS``): a directory of someone else's files is never deleted.
"""

from __future__ import annotations

import csv
import io
import posixpath
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pandas as pd

from moviegenre.core.errors import DataError, MovieGenreError, OutputError
from moviegenre.core.genres import PROBABILITY_KEYS

ID_COLUMN = "ID"
#: Written into a finished Parquet output directory, as Spark and Hadoop do.
SUCCESS_MARKER = "_SUCCESS"
REJECT_COLUMNS = (ID_COLUMN, "source", "row", "reason")
_TEMPORARY, _REJECTS, _INPUTS = "_temporary", "_rejects", "_inputs"
_BLOCK_BYTES = 1 << 20


def url_to_fs(url: str | Path, *, reading: bool = False):
    """``(filesystem, path)`` for a local path or an fsspec URL, with a clear error when the
    filesystem's package (``s3fs`` for ``s3://``...) is not installed."""
    try:
        import fsspec.core
    except ImportError:
        from moviegenre.core.advice import pip_install

        raise MovieGenreError(f"batch scoring needs fsspec: {pip_install('fsspec')}") from None
    try:
        return fsspec.core.url_to_fs(str(url))
    except (ImportError, ValueError) as exc:  # an unknown protocol, or its package missing
        error = DataError if reading else OutputError
        raise error(f"cannot {'read' if reading else 'write'} {url}: {exc}") from None


def output_format(output: str | Path) -> str:
    """``"csv"`` for ``OUT.csv``; ``"parquet"`` (a directory) for ``OUT.parquet`` or no suffix."""
    suffix = posixpath.splitext(str(output).rstrip("/"))[1].lower()
    if suffix == ".csv":
        return "csv"
    if suffix in ("", ".parquet"):
        return "parquet"
    raise DataError(
        f"output {output} must end in .csv (one CSV file) or .parquet or have no suffix (a Parquet directory)"
    )


def rejects_path_for(output: str | Path) -> str | Path:
    """``OUT.rejects.csv`` beside ``OUT`` (a :class:`Path` for a local ``OUT``)."""
    text = str(output).rstrip("/")
    stem = posixpath.splitext(text)[0] if posixpath.splitext(text)[1] else text
    return Path(stem + ".rejects.csv") if isinstance(output, Path) else stem + ".rejects.csv"


def check_output(output: str | Path) -> str:
    """The format of ``output``; raise :class:`DataError` if it cannot or may not be written."""
    fmt = output_format(output)
    fs, path = url_to_fs(output)
    if fmt == "csv" and fs.isdir(path):
        raise DataError(f"output {output} is a directory; give a file name ending in .csv")
    if fmt == "parquet":
        _require_pyarrow()
        if fs.exists(path) and not fs.isdir(path):
            raise DataError(f"output {output} is a file; a Parquet output is a directory")
        if fs.isdir(path) and fs.ls(path) and not fs.exists(posixpath.join(path, SUCCESS_MARKER)):
            raise DataError(
                f"output {output} exists and is not a finished moviegenre Parquet output "
                f"({SUCCESS_MARKER} is missing); refusing to replace it: choose another -o or empty it"
            )
    return fmt


@dataclass(frozen=True)
class PartWriter:
    """Writes one piece's scores and rejects into a staging directory; small enough to be
    sent to a worker with each piece."""

    #: The staging directory, as an absolute local path or an fsspec URL.
    staging: str
    #: ``"csv"`` or ``"parquet"``.
    format: str
    #: IDs are written as integers (``int64``); else as text.
    integer_ids: bool
    #: The probability columns after the ID: the model's keys, in its order.
    columns: tuple[str, ...] = PROBABILITY_KEYS

    def write_scores(self, number: int, partitions: Iterable[pd.DataFrame]) -> None:
        """Write the scores of piece ``number`` (frames indexed by ID, as they come) as its part."""
        if self.format == "csv":
            self._write(part_name(number, "csv"), "w", lambda handle: self._csv_rows(handle, partitions))
        else:
            self._write(part_name(number, "parquet"), "wb", lambda handle: self._parquet(handle, partitions))

    def write_rejects(self, number: int, rejects: pd.DataFrame) -> None:
        """Write the rejected rows of piece ``number`` (the :data:`REJECT_COLUMNS`, no header)."""
        name = posixpath.join(_REJECTS, part_name(number, "csv"))
        self._write(name, "w", lambda handle: rejects.to_csv(handle, header=False, index=False))

    @contextmanager
    def staged_input(self, number: int) -> Iterator[tuple[str, IO[bytes]]]:
        """(URL, handle to write) of a copy of input ``number`` (a zip's CSV, unzipped) in the
        staging directory, complete under its URL only once the block ends without error."""
        fs, staging = url_to_fs(self.staging)
        name = posixpath.join(staging, _INPUTS, f"input-{number:06d}.csv")
        temporary = posixpath.join(staging, _TEMPORARY, f"input-{number:06d}.csv.{uuid.uuid4().hex}")
        try:
            with fs.open(temporary, "wb") as handle:
                yield fs.unstrip_protocol(name), handle
            fs.mv(temporary, name)
        except OSError as exc:
            raise OutputError(f"cannot copy an input into {self.staging}: {exc.strerror or exc}") from None
        finally:
            with suppress(OSError, FileNotFoundError):
                if fs.exists(temporary):
                    fs.rm(temporary)

    def _write(self, name: str, mode: str, write) -> None:
        fs, staging = url_to_fs(self.staging)
        temporary = posixpath.join(staging, _TEMPORARY, f"{posixpath.basename(name)}.{uuid.uuid4().hex}")
        text = {"encoding": "utf-8", "newline": ""} if mode == "w" else {}
        try:
            with fs.open(temporary, mode, **text) as handle:
                write(handle)
            fs.mv(temporary, posixpath.join(staging, name))  # whole, even if a retry wrote it before
        except OSError as exc:
            raise OutputError(f"cannot write a part of the output in {self.staging}: {exc.strerror or exc}") from None

    def _csv_rows(self, handle, partitions: Iterable[pd.DataFrame]) -> None:
        for scores in partitions:
            scores.to_csv(handle, header=False)

    def _parquet(self, handle, partitions: Iterable[pd.DataFrame]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema(
            [(ID_COLUMN, pa.int64() if self.integer_ids else pa.string())]
            + [(key, pa.float64()) for key in self.columns]
        )
        with pq.ParquetWriter(handle, schema) as writer:  # no partition: a valid, empty part
            for scores in partitions:
                frame = scores.reset_index()
                # Nullable types: a missing ID stays missing (null), whatever the ID type.
                frame[ID_COLUMN] = frame[ID_COLUMN].astype("Int64" if self.integer_ids else "string")
                writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))


def csv_header(names: Sequence[str]) -> str:
    """The header line of ``names``, quoted where a name needs it as pandas would write it (a
    model's keys never do: :func:`~moviegenre.core.labels.label_key` escapes ``,`` ``"`` and
    line breaks), so ``pandas.read_csv`` reads back exactly ``names``."""
    line = io.StringIO()
    csv.writer(line, lineterminator="\n").writerow(names)
    return line.getvalue()


def part_name(number: int, suffix: str) -> str:
    # Zero-padded: readers list files in name order, which is input order.
    return f"part-{number:06d}.{suffix}"


class Staging:
    """The hidden directory beside ``output`` where its parts are written, and its commit.

    Entering creates it (an :class:`~moviegenre.core.errors.OutputError` if it cannot be); leaving
    removes whatever was not committed, so a failed run leaves nothing behind.
    """

    def __init__(self, output: str | Path, *, integer_ids: bool, columns: Sequence[str] = PROBABILITY_KEYS):
        self.output, self.format = output, check_output(output)
        self.fs, self.path = url_to_fs(output)
        parent, name = posixpath.split(self.path.rstrip("/"))
        self._staging = posixpath.join(parent, f".{name}.{uuid.uuid4().hex}.part")
        self._rejects_path = url_to_fs(rejects_path_for(output))[1]
        rejects_parent, rejects_name = posixpath.split(self._rejects_path)
        self._rejects_staged = posixpath.join(rejects_parent, f".{rejects_name}.{uuid.uuid4().hex}.part")
        self.writer = PartWriter(self.fs.unstrip_protocol(self._staging), self.format, integer_ids, tuple(columns))

    def __enter__(self) -> Staging:
        with self._errors():
            for folder in (_TEMPORARY, _REJECTS, _INPUTS):
                self.fs.makedirs(posixpath.join(self._staging, folder), exist_ok=True)
        return self

    def __exit__(self, *exc_info) -> None:
        for leftover in (self._staging, self._rejects_staged):
            with suppress(OSError, FileNotFoundError):
                if self.fs.exists(leftover):
                    self.fs.rm(leftover, recursive=True)

    def commit(self, pieces: Sequence[int], rejected: Sequence[int]) -> str | Path | None:
        """Assemble the parts of ``pieces`` (in that order) into the output and the rejects of
        the pieces ``rejected`` into the rejects file; move both into place. Return the rejects
        file, or ``None`` when there are none (a stale one from an earlier run is removed)."""
        with self._errors():
            if rejected:
                self._concatenate(",".join(REJECT_COLUMNS) + "\n",
                                  [posixpath.join(_REJECTS, part_name(n, "csv")) for n in rejected],
                                  self._rejects_staged)  # fmt: skip
            for folder in (_REJECTS, _TEMPORARY, _INPUTS):
                self.fs.rm(posixpath.join(self._staging, folder), recursive=True)
            if self.format == "csv":
                self._commit_csv(pieces)
            else:
                self._commit_parquet()
            if rejected:
                self.fs.mv(self._rejects_staged, self._rejects_path)
                return rejects_path_for(self.output)
            if self.fs.exists(self._rejects_path):  # a stale rejects file would mislead
                self.fs.rm(self._rejects_path)
        return None

    def _commit_csv(self, pieces: Sequence[int]) -> None:
        header = csv_header([ID_COLUMN, *self.writer.columns])
        assembled = posixpath.join(self._staging, "_assembled.csv")
        self._concatenate(header, [part_name(n, "csv") for n in pieces], assembled)
        self.fs.mv(assembled, self.path)

    def _commit_parquet(self) -> None:
        self.fs.pipe_file(posixpath.join(self._staging, SUCCESS_MARKER), b"")
        check_output(self.output)  # still ours to replace, after the time scoring took?
        backup = None
        if self.fs.exists(self.path):
            parent, name = posixpath.split(self.path.rstrip("/"))
            backup = posixpath.join(parent, f".{name}.old-{uuid.uuid4().hex}")
            self.fs.mv(self.path, backup, recursive=True)
        self.fs.mv(self._staging, self.path, recursive=True)
        if backup is not None:
            with suppress(OSError):
                self.fs.rm(backup, recursive=True)

    def _concatenate(self, header: str, names: Sequence[str], target: str) -> None:
        """``header`` then the staged files ``names`` into ``target``, a block at a time."""
        with self.fs.open(target, "wb") as out:
            out.write(header.encode("utf-8"))
            for name in names:
                with self.fs.open(posixpath.join(self._staging, name), "rb") as part:
                    shutil.copyfileobj(part, out, _BLOCK_BYTES)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise OutputError(f"cannot write {self.output}: {exc.strerror or exc}") from None


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        from moviegenre.core.advice import install_extra

        raise MovieGenreError(
            f"Parquet output needs pyarrow: {install_extra('parquet')}, "
            "or give an output ending in .csv"
        ) from None
