"""Where batch scores go: one CSV file, or a directory of Parquet part files.

The output path chooses the format: ``OUT.csv`` is one CSV file; ``OUT.parquet`` or a path
with no suffix is a Parquet directory holding ``part-000000.parquet``, ``part-000001.parquet``...
(one per partition, in input order) and, once complete, a ``_SUCCESS`` marker, as Spark and
Hadoop write it. Both have the columns ``ID`` (text) then the 24 ``p_`` probabilities.

Either is built under a hidden name beside ``OUT`` (:mod:`moviegenre.files`) and moved into
place only when every partition is in, so an interrupted run leaves nothing that looks
finished. A Parquet directory is only replaced if it is empty or a finished output (it has
``_SUCCESS``): a directory of someone else's files is never deleted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Protocol

import pandas as pd

from .errors import DataError, MovieGenreError
from .files import atomic_directory, atomic_write
from .genres import PROBABILITY_KEYS

ID_COLUMN = "ID"
#: Written into a finished Parquet output directory, as Spark and Hadoop do.
SUCCESS_MARKER = "_SUCCESS"


class PartWriter(Protocol):
    """Appends partitions of scores (index = IDs) to an output being built."""

    parts: int

    def write(self, scores: pd.DataFrame) -> None: ...


def output_format(output: Path) -> str:
    """``"csv"`` for ``OUT.csv``; ``"parquet"`` (a directory) for ``OUT.parquet`` or no suffix."""
    suffix = output.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in ("", ".parquet"):
        return "parquet"
    raise DataError(
        f"output {output} must end in .csv (one CSV file) or .parquet or have no suffix (a Parquet directory)"
    )


def check_output(output: Path) -> str:
    """The format of ``output``; raise :class:`DataError` if it cannot or may not be written."""
    fmt = output_format(output)
    if fmt == "csv" and output.is_dir():
        raise DataError(f"output {output} is a directory; give a file name ending in .csv")
    if fmt == "parquet":
        _require_pyarrow()
        if output.exists() and not output.is_dir():
            raise DataError(f"output {output} is a file; a Parquet output is a directory")
        if output.is_dir() and any(output.iterdir()) and not (output / SUCCESS_MARKER).exists():
            raise DataError(
                f"output {output} exists and is not a finished moviegenre Parquet output "
                f"(no {SUCCESS_MARKER}); refusing to replace it: choose another -o or empty it"
            )
    return fmt


@contextmanager
def open_output(output: Path) -> Iterator[PartWriter]:
    """A writer of partitions into ``output``, moved into place when the block succeeds.

    If the block raises, nothing is left behind and an earlier ``output`` is untouched. No
    partition at all still makes a valid output: a header, or one empty part file.
    """
    fmt = check_output(output)
    with (_csv_output if fmt == "csv" else _parquet_output)(output) as writer:
        yield writer
        if not writer.parts:
            writer.write(pd.DataFrame(columns=list(PROBABILITY_KEYS), index=pd.Index([], name=ID_COLUMN), dtype=float))


class _CsvWriter:
    def __init__(self, handle: IO[str]):
        self.handle = handle
        self.parts = 0

    def write(self, scores: pd.DataFrame) -> None:
        # The header once, then the rows: the same bytes whatever the partitioning.
        scores.to_csv(self.handle, header=self.parts == 0)
        self.parts += 1


class _ParquetWriter:
    def __init__(self, folder: Path):
        import pyarrow as pa

        self.folder = folder
        self.schema = pa.schema([(ID_COLUMN, pa.string())] + [(key, pa.float64()) for key in PROBABILITY_KEYS])
        self.parts = 0

    def write(self, scores: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame = scores.reset_index().astype({ID_COLUMN: str})  # IDs are text, as in the CSV
        table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        # Zero-padded names: readers list files in name order, which is input order.
        pq.write_table(table, self.folder / f"part-{self.parts:06d}.parquet")
        self.parts += 1


@contextmanager
def _csv_output(output: Path) -> Iterator[_CsvWriter]:
    with atomic_write(output) as handle:
        yield _CsvWriter(handle)


@contextmanager
def _parquet_output(output: Path) -> Iterator[_ParquetWriter]:
    with atomic_directory(output) as staging:
        yield _ParquetWriter(staging)
        (staging / SUCCESS_MARKER).write_text("", encoding="utf-8")
        check_output(output)  # still ours to replace, after the time scoring took?


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise MovieGenreError(
            "Parquet output needs pyarrow: pip install 'moviegenre[parquet]', "
            "or give an output ending in .csv"
        ) from None
