"""Batch scoring of files into the submission format: ``ID`` then the 24 ``p_`` columns.

:func:`score_files` is the one way files are scored, whatever scores them:

1. the inputs (paths, or globs such as ``data/*.csv``) are expanded and the output checked,
   before anything starts, so a typo costs no model load or cluster start;
2. each input is read and checked against the input contract (:mod:`moviegenre.items`). Rows
   that break it (a blank plot, one with no letter or digit, one over the length limit, a bad
   year...) cannot be scored: they are listed with their ID, file, row and reason in
   ``OUT.rejects.csv`` beside the output and counted in the summary, never silently dropped;
3. the valid rows are cut into partitions of :data:`PARTITION_ROWS` plots, which an
   :class:`Engine` scores: :class:`LocalEngine` in this process, or
   :class:`~moviegenre.batch_dask.DaskEngine` on a Dask cluster;
4. the scores are written in input order as they come back (:mod:`moviegenre.batch_output`:
   one CSV file or a Parquet directory), so memory holds one input file and a few partitions
   however many files there are. The output is moved into place only when complete.

The engine changes how fast, never what is written: the same inputs give the same partitions
and the same bytes whichever engine scores them.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import numpy as np
import pandas as pd

from .batch_output import ID_COLUMN, check_output, open_output
from .data import read_table, require_columns, row_problems, write_csv_atomically
from .errors import DataError, UsageError
from .genres import PROBABILITY_KEYS
from .items import to_frame
from .predict import GenreModel

#: Plots per partition: big enough that per-call overhead is noise, small enough to balance
#: a cluster and bound memory.
PARTITION_ROWS = 2_000

Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


class Engine(Protocol):
    """What scores partitions of plots: set up on ``__enter__``, torn down on ``__exit__``.

    :meth:`score` takes partitions (frames of ``plot``, ``title`` and ``year``, index = IDs)
    and yields their probabilities in the same order, one frame per partition as
    :func:`probability_frame` makes it. It pulls partitions only as it has room for them, so
    the caller's memory stays bounded.
    """

    #: Named in the summary: ``"local"``, ``"dask"``.
    name: str
    #: How many partitions it scores at once; known once entered.
    workers: int

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None: ...

    def score(self, partitions: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]: ...


def probability_frame(model: GenreModel, partition: pd.DataFrame) -> pd.DataFrame:
    """The probabilities for ``partition`` (index = IDs) as a submission-format frame."""
    out = pd.DataFrame(model.predict_proba(partition), columns=list(PROBABILITY_KEYS), index=partition.index)
    out.index.name = ID_COLUMN
    return out


class LocalEngine:
    """Scores partitions one after another in this process, with a model already loaded."""

    name = "local"
    workers = 1

    def __init__(self, model: GenreModel):
        self.model = model

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        return None

    def score(self, partitions: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for partition in partitions:
            yield probability_frame(self.model, partition)


@dataclass(frozen=True)
class ScoreSummary:
    input_rows: int
    scored: int
    rejected: int
    output: Path
    rejects: Path | None
    #: ``"csv"`` or ``"parquet"``.
    format: str
    partitions: int
    engine: str
    workers: int


def rejects_path_for(output: Path) -> Path:
    return output.with_name(output.stem + ".rejects.csv")


def expand_inputs(patterns: Sequence[str | Path]) -> list[Path]:
    """Input paths with globs expanded (matches sorted); a glob that matches no file is an error."""
    paths: list[Path] = []
    for pattern in patterns:
        text = os.path.expanduser(str(pattern))
        if glob.has_magic(text):
            matches = sorted(m for m in glob.glob(text, recursive=True) if os.path.isfile(m))
            if not matches:
                raise DataError(f"no files match {str(pattern)!r}")
            paths.extend(Path(m) for m in matches)
        else:
            path = Path(text)
            if not path.exists():
                raise DataError(f"{path} does not exist")
            paths.append(path)
    if not paths:
        raise DataError("no input files given")
    return paths


def read_scoring_input(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read one input file; return (movies to score, rejected rows with their reason)."""
    raw = read_table(path)  # an OSError is a DataError here, never taken for a failed write
    if raw.empty:
        raise DataError(f"{path} has a header but no rows; nothing to score")
    require_columns(raw, ["plot"], str(path))
    reasons = row_problems(raw)
    invalid = reasons.notna().to_numpy()
    rejects = pd.DataFrame(
        {
            ID_COLUMN: raw.index[invalid],
            "source": str(path),
            "row": np.flatnonzero(invalid) + 1,
            "reason": reasons[invalid].to_numpy(),
        }
    )
    return to_frame(raw[~invalid]), rejects


def score_files(
    engine: Engine,
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    partition_rows: int = PARTITION_ROWS,
    progress: Progress = _quiet,
) -> ScoreSummary:
    """Score every input (paths or globs) with ``engine`` into ``output``, in input order.

    ``output`` is one CSV file (``OUT.csv``) or a Parquet directory (``OUT.parquet`` or no
    suffix); rejected rows go to ``OUT.rejects.csv``, and a stale one is removed when there
    are none. The engine is only started once the inputs and the output have been checked.
    """
    if partition_rows < 1:
        raise UsageError(f"partition_rows must be at least 1, got {partition_rows}")
    paths, output = expand_inputs(inputs), Path(output)
    fmt = check_output(output)
    reader = _PartitionReader(paths, partition_rows, progress)
    scored = 0
    with engine, open_output(output) as writer:
        for scores in engine.score(reader.partitions()):
            writer.write(scores)
            scored += len(scores)
            progress(f"scored {scored:,} of {reader.rows_read:,} plots read ({reader.where})")
        rejects = pd.concat(reader.rejects, ignore_index=True)
        rejects_path = _write_rejects(rejects, output)
        progress(f"moving {output} into place")
    return ScoreSummary(
        input_rows=reader.input_rows, scored=scored, rejected=len(rejects), output=output,
        rejects=rejects_path, format=fmt, partitions=reader.partitions_cut, engine=engine.name,
        workers=engine.workers,
    )  # fmt: skip


class _PartitionReader:
    """Reads the inputs one by one, cutting their valid rows into partitions and keeping
    their rejects and counts."""

    def __init__(self, paths: list[Path], partition_rows: int, progress: Progress):
        self.paths, self.partition_rows, self.progress = paths, partition_rows, progress
        self.rejects: list[pd.DataFrame] = []
        self.input_rows = self.rows_read = self.partitions_cut = 0
        self.where = ""

    def partitions(self) -> Iterator[pd.DataFrame]:
        for number, path in enumerate(self.paths, start=1):
            self.where = f"file {number} of {len(self.paths)}"
            self.progress(f"reading {path} ({self.where})")
            frame, rejects = read_scoring_input(path)
            self.input_rows += len(frame) + len(rejects)
            self.rows_read += len(frame)
            self.rejects.append(rejects)
            for start in range(0, len(frame), self.partition_rows):
                self.partitions_cut += 1
                yield frame.iloc[start : start + self.partition_rows]


def _write_rejects(rejects: pd.DataFrame, output: Path) -> Path | None:
    rejects_path = rejects_path_for(output)
    if len(rejects):
        write_csv_atomically(rejects, rejects_path, index=False)
        return rejects_path
    rejects_path.unlink(missing_ok=True)  # a stale rejects file from an earlier run would mislead
    return None
