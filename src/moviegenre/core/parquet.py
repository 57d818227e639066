"""Reading a Parquet file users hand the product, with the bounds and the one-error rule of
:mod:`moviegenre.core.tables`: a damaged file is one :class:`~moviegenre.core.errors.DataError`
naming it, its uncompressed size is checked against ``max_bytes`` from its footer before any
row is read, and its width, names and ID type are checked from its schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from moviegenre.core.errors import DataError, MovieGenreError
from moviegenre.core.tables import MAX_COLUMNS, refuse_duplicate_columns, require_regular_file

if TYPE_CHECKING:
    import pyarrow as pa

_TEXT_FIELDS = ("plot", "title")


def pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        from moviegenre.core.advice import install_extra

        raise MovieGenreError(f"Parquet input needs pyarrow: {install_extra('parquet')}") from None
    return pq


@contextmanager
def parquet_errors(source: str) -> Iterator[None]:
    """Any failure of pyarrow on a damaged file, as one :class:`DataError` naming it."""
    try:
        yield
    except MovieGenreError:
        raise
    except OSError as exc:
        raise DataError(f"cannot read {source}: {exc.strerror or exc}") from None
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise DataError(f"{source} is not a readable Parquet file ({exc})") from None


def check_parquet(metadata, source: str, max_bytes: int) -> pa.Schema:
    """The file's Arrow schema, once its width, names, ID type and size are checked."""
    import pyarrow as pa

    with parquet_errors(source):
        schema = metadata.schema.to_arrow_schema()
        size = sum(metadata.row_group(group).total_byte_size for group in range(metadata.num_row_groups))
    if not schema.names:
        raise DataError(f"{source} has no columns")
    if len(schema.names) > MAX_COLUMNS:
        raise DataError(f"{source} has {len(schema.names):,} columns; the limit is {MAX_COLUMNS:,}")
    refuse_duplicate_columns([str(name).strip() for name in schema.names], source)
    id_type = schema.field(0).type
    if pa.types.is_nested(id_type) or _is_binary(id_type):
        raise DataError(
            f"{source}: the ID column {schema.names[0]!r} holds {id_type}; an ID must be one integer or text value"
        )
    if size > max_bytes:
        raise DataError(
            f"{source} holds {size:,} bytes uncompressed, more than {max_bytes:,}, the limit "
            "MOVIEGENRE_MAX_INPUT_BYTES; split it into smaller files or raise the limit"
        )
    return schema


def parquet_frame(table: pa.Table, source: str, first_row: int = 0) -> pd.DataFrame:
    """Rows of a Parquet file as a movie frame: the first column the index (integers kept as
    nullable ``Int64``), text and numbers as text (missing as ``""``). A plot or title that is
    not text, or a year that is neither a number nor text, keeps its value, so that the input
    contract refuses it with its type; binary text is decoded as UTF-8, strictly."""
    import pyarrow as pa

    # Integers as pandas' nullable Int64: a missing ID or year stays missing, not a float NaN.
    as_nullable = {getattr(pa, name)(): pd.Int64Dtype()
                   for name in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")}  # fmt: skip
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if _is_binary(kind):
            columns[name] = _decoded(column.to_pylist(), source, name, first_row)
        elif name != table.column_names[0] and not _as_text(name, kind):
            columns[name] = pd.Series(["" if value is None else value for value in column.to_pylist()], dtype=object)
        else:
            series = column.to_pandas(types_mapper=as_nullable.get)
            columns[name] = series if name == table.column_names[0] else _text(series)
    frame = pd.DataFrame(columns, columns=table.column_names)
    return frame.set_index(table.column_names[0])


def _is_binary(kind: pa.DataType) -> bool:
    import pyarrow as pa

    checks = ("is_binary", "is_large_binary", "is_fixed_size_binary", "is_binary_view")
    return any(getattr(pa.types, check, lambda _: False)(kind) for check in checks)


def _as_text(name: str, kind: pa.DataType) -> bool:
    """Whether a column of this type is read as text (as today), else kept as values."""
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)
    text = text or getattr(pa.types, "is_string_view", lambda _: False)(kind)
    if name in _TEXT_FIELDS:
        return text
    if name == "year":
        return text or pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    return True


def _text(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), "").astype(str)


def _decoded(values: list, source: str, name: str, first_row: int) -> pd.Series:
    decoded = []
    for position, value in enumerate(values):
        try:
            decoded.append("" if value is None else value.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{source}: column {name!r}, data row {first_row + position + 1}, is not valid UTF-8: "
                f"byte 0x{value[exc.start]:02x} at offset {exc.start}; write text columns as UTF-8 strings"
            ) from None
    return pd.Series(decoded, dtype=object)


def read_parquet_file(path: Path, source: str, max_bytes: int) -> pd.DataFrame:
    """A local Parquet file, whole, as :func:`parquet_frame` gives its rows."""
    require_regular_file(path, source)
    pq = pyarrow_parquet()
    with parquet_errors(source):
        parquet = pq.ParquetFile(path)
    check_parquet(parquet.metadata, source, max_bytes)
    with parquet_errors(source):
        table = parquet.read()
    return parquet_frame(table, source)
