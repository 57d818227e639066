"""Batch scoring of files into the submission format: ``ID`` then the model's ``p_<label>`` columns.

The columns after ``ID`` are the model's
:attr:`~moviegenre.model.genre_model.GenreModel.probability_keys`, in its order: for the default
model the 24 ``p_`` genres of the original system, byte for byte; for a model of its own labels
one ``p_<label>`` per label (escaped as :mod:`moviegenre.core.labels` says). Every engine knows
them before it starts (:attr:`Engine.probability_keys`, from the model's card), so an input
holding a column of the same name is refused before anything is written.

:func:`score_files` is the one way files are scored, whatever scores them:

1. the inputs (paths, globs such as ``data/*.csv``, or fsspec URLs such as
   ``s3://bucket/catalogue/*.parquet``) are expanded and planned as pieces
   (:mod:`moviegenre.batch.inputs`: a Parquet file by row groups, a CSV file whole; their
   column names checked against the output's) and the output checked, before anything
   starts, so a typo costs no model load or cluster start;
2. an :class:`Engine` cuts each CSV or zip file into pieces of ``piece_rows`` rows
   (:func:`~moviegenre.batch.inputs.cut_piece`: one streaming pass per file, where the pieces
   are scored, never in this process on a cluster), then runs :func:`score_piece` on every
   piece: :class:`LocalEngine` in this process (or in a pool of processes), or
   :class:`~moviegenre.batch.dask_engine.DaskEngine` on the workers of a Dask cluster.
   Wherever it runs, it reads the piece, checks each row against the input contract
   (:mod:`moviegenre.core.items`), scores the valid rows :data:`PARTITION_ROWS` at a time and
   writes their scores, and the rows that cannot be scored (a blank plot, a bad year...) with
   their ID, file, row and reason, as part files into the output's staging directory;
3. when every piece is in, this process commits (:mod:`moviegenre.batch.outputs`): the parts in
   input order become one CSV file or a Parquet directory, the rejects ``OUT.rejects.csv``,
   moved into place only then. Every row is counted in the summary: scored or rejected.

This process never holds more than a piece's summary: the rows go from the input to the
output through whichever process scores them. The engine changes how fast, never what is
written: the same inputs give the same pieces and the same bytes whichever engine scores them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import pandas as pd

from moviegenre.batch.inputs import PIECE_ROWS, Piece, cut_piece, is_url, plan_inputs, read_piece, split_rejects
from moviegenre.batch.outputs import ID_COLUMN, PartWriter, Staging, check_output
from moviegenre.core.data import input_limit
from moviegenre.core.errors import MovieGenreError, UsageError
from moviegenre.core.items import DEFAULT_MAX_PLOT_CHARS
from moviegenre.core.progress import Advance, Progress, quiet
from moviegenre.core.tables import DEFAULT_MAX_INPUT_BYTES
from moviegenre.model.genre_model import GenreModel

#: Plots scored at once: big enough that per-call overhead is noise, small enough to bound memory.
PARTITION_ROWS = 2_000
#: Rows read from an input at a time (at least): memory holds this many, whatever the file's size.
READ_ROWS = 10_000

@dataclass(frozen=True)
class Job:
    """What scoring any piece of one run needs besides the model: sent with every piece."""

    writer: PartWriter
    partition_rows: int
    #: The longest plot scored; a longer one is a reject.
    max_plot_chars: int = DEFAULT_MAX_PLOT_CHARS
    #: The most bytes one input file may hold once decompressed (``MOVIEGENRE_MAX_INPUT_BYTES``).
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
    #: Rows of a piece that a CSV file is cut into (``MOVIEGENRE_PIECE_ROWS``).
    piece_rows: int = PIECE_ROWS


@dataclass(frozen=True)
class PieceResult:
    number: int
    rows: int
    scored: int
    rejected: int


class Engine(Protocol):
    """What runs :func:`score_piece` on pieces: set up on ``__enter__``, torn down on ``__exit__``.

    :meth:`cut` runs :func:`cut_pieces` on the uncut pieces and returns their pieces in order;
    :meth:`run` yields one :class:`PieceResult` per piece, in any order, as they finish.
    """

    #: Named in the summary: ``"local"``, ``"dask"``.
    name: str
    #: How many pieces it scores at once; known once entered.
    workers: int

    @property
    def probability_keys(self) -> tuple[str, ...]:
        """The model's output keys, in its order: known before entering (from its card)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None: ...

    def cut(self, job: Job, pieces: Sequence[Piece]) -> list[list[Piece]]: ...

    def run(self, job: Job, pieces: Sequence[Piece]) -> Iterator[PieceResult]: ...


def cut_pieces(job: Job, piece: Piece) -> list[Piece]:
    """The pieces of ``piece`` once cut (:func:`~moviegenre.batch.inputs.cut_piece`): the same on every engine."""
    return cut_piece(piece, job.piece_rows, job.max_input_bytes, job.writer)


def probability_frame(model: GenreModel, partition: pd.DataFrame, max_plot_chars: int) -> pd.DataFrame:
    """The probabilities for ``partition`` (index = IDs) as a submission-format frame: one
    column per key of the model (:attr:`~moviegenre.model.genre_model.GenreModel.probability_keys`)."""
    proba = model.predict_proba(partition, max_plot_chars=max_plot_chars)
    out = pd.DataFrame(proba, columns=list(model.probability_keys), index=partition.index)
    out.index.name = ID_COLUMN
    return out


def score_piece(model: GenreModel, job: Job, piece: Piece) -> PieceResult:
    """Read, check and score one piece, and write its part and its rejects: the same on every engine.

    The piece is read :data:`READ_ROWS` rows at a time, and its valid rows scored in
    partitions of that many as they come, so memory does not grow with the piece's rows (only
    its rejects are kept until the end); the partitions are the same as when reading it whole.
    """
    keys = job.writer.columns
    if tuple(model.probability_keys) != keys:  # the run was planned for another model's columns
        raise MovieGenreError(
            f"the model scoring {piece.source} writes other columns ({len(model.probability_keys)} labels) than "
            f"this run planned ({len(keys)}): was the model directory replaced while scoring? score again"
        )
    counts = {"rows": 0, "scored": 0}
    rejects: list[pd.DataFrame] = []

    def valid_rows() -> Iterator[pd.DataFrame]:
        for raw in read_piece(piece, job.max_input_bytes, max(job.partition_rows, READ_ROWS)):
            first_row = piece.first_row + counts["rows"]
            movies, rejected = split_rejects(raw, piece, first_row, job.max_plot_chars, keys)
            counts["rows"] += len(raw)
            if len(rejected):
                rejects.append(rejected)
            yield movies

    def partitions() -> Iterator[pd.DataFrame]:
        for movies in _repartition(valid_rows(), job.partition_rows):
            counts["scored"] += len(movies)
            yield probability_frame(model, movies, job.max_plot_chars)

    job.writer.write_scores(piece.number, partitions())
    rejected = pd.concat(rejects, ignore_index=True) if rejects else None
    if rejected is not None:
        job.writer.write_rejects(piece.number, rejected)
    return PieceResult(piece.number, counts["rows"], counts["scored"], 0 if rejected is None else len(rejected))


def _repartition(frames: Iterable[pd.DataFrame], size: int) -> Iterator[pd.DataFrame]:
    """The rows of ``frames`` in frames of ``size`` rows (the last one shorter), in order."""
    waiting: list[pd.DataFrame] = []
    count = 0
    for frame in frames:
        if not len(frame):
            continue
        waiting.append(frame)
        count += len(frame)
        while count >= size:
            joined = pd.concat(waiting) if len(waiting) > 1 else waiting[0]
            yield joined.iloc[:size]
            waiting, count = [joined.iloc[size:]], count - size
    if count:
        yield pd.concat(waiting) if len(waiting) > 1 else waiting[0]


class LocalEngine:
    """Scores pieces one after another in this process, with a model already loaded."""

    name = "local"
    workers = 1

    def __init__(self, model: GenreModel):
        self.model = model

    @property
    def probability_keys(self) -> tuple[str, ...]:
        return tuple(self.model.probability_keys)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        return None

    def cut(self, job: Job, pieces: Sequence[Piece]) -> list[list[Piece]]:
        return [cut_pieces(job, piece) for piece in pieces]

    def run(self, job: Job, pieces: Sequence[Piece]) -> Iterator[PieceResult]:
        for piece in pieces:
            yield score_piece(self.model, job, piece)


@dataclass(frozen=True)
class ScoreSummary:
    input_rows: int
    scored: int
    rejected: int
    output: Path | str
    rejects: Path | str | None
    #: ``"csv"`` or ``"parquet"``.
    format: str
    #: Pieces of input scored (and part files written).
    partitions: int
    engine: str
    workers: int


def score_files(
    engine: Engine,
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    partition_rows: int = PARTITION_ROWS,
    piece_rows: int = PIECE_ROWS,
    max_plot_chars: int = DEFAULT_MAX_PLOT_CHARS,
    max_input_bytes: int | None = None,
    progress: Progress = quiet,
    advance: Advance = quiet,
) -> ScoreSummary:
    """Score every input (paths, globs or fsspec URLs) with ``engine`` into ``output``, in input order.

    ``output`` is one CSV file (``OUT.csv``) or a Parquet directory (``OUT.parquet`` or no
    suffix), local or an fsspec URL; rejected rows go to ``OUT.rejects.csv``, and a stale one
    is removed when there are none. The engine is only started once the inputs and the output
    have been checked. A row whose plot is longer than ``max_plot_chars`` (pass the configured
    ``MOVIEGENRE_MAX_PLOT_CHARS``) is rejected like any other invalid row. An input file of more
    than ``max_input_bytes`` (once decompressed; by default ``MOVIEGENRE_MAX_INPUT_BYTES``) is
    refused. A CSV or zip file is scored in pieces of ``piece_rows`` rows (pass the configured
    ``MOVIEGENRE_PIECE_ROWS``). The output's columns are ``ID`` then the engine's model's
    ``probability_keys``; an input with a column of one of those names is refused before
    anything is written. ``progress`` hears what is happening; ``advance`` how many rows
    of how many are done.
    """
    for name, value in (("partition_rows", partition_rows), ("piece_rows", piece_rows)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}")
    output = output if is_url(str(output)) else Path(output)
    check_output(output)
    progress("planning the input pieces")
    max_input_bytes = input_limit(max_input_bytes)
    keys = tuple(engine.probability_keys)  # from the model's card: no cluster started yet
    plan = plan_inputs(inputs, max_input_bytes, piece_rows, reserved=keys)
    staging = Staging(output, integer_ids=plan.integer_ids, columns=keys)
    results: dict[int, PieceResult] = {}
    with engine, staging:
        job = Job(staging.writer, partition_rows, max_plot_chars, max_input_bytes, piece_rows)
        pieces = _cut(engine, job, plan.pieces, progress)
        total = sum(piece.rows or 0 for piece in pieces)
        advance(0, total)
        progress(f"scoring {total:,} rows of {len(plan.files):,} {_plural(len(plan.files), 'file')}")
        for result in engine.run(job, pieces):
            results[result.number] = result
            advance(sum(r.rows for r in results.values()), total)
        progress(f"moving {output} into place")
        numbers = [piece.number for piece in pieces]
        rejects = staging.commit(numbers, [n for n in numbers if results[n].rejected])
    done = results.values()
    return ScoreSummary(
        input_rows=sum(r.rows for r in done), scored=sum(r.scored for r in done),
        rejected=sum(r.rejected for r in done), output=output, rejects=rejects, format=staging.format,
        partitions=len(pieces), engine=engine.name, workers=engine.workers,
    )  # fmt: skip


def _cut(engine: Engine, job: Job, pieces: Sequence[Piece], progress: Progress) -> list[Piece]:
    """Every piece, the CSV and zip files cut by the engine, numbered anew in input order."""
    uncut = [piece for piece in pieces if piece.uncut]
    if uncut:
        progress(f"cutting {len(uncut):,} CSV {_plural(len(uncut), 'file')} into pieces of {job.piece_rows:,} rows")
    cuts = iter(engine.cut(job, uncut) if uncut else [])
    every = [part for piece in pieces for part in (next(cuts) if piece.uncut else [piece])]
    return [replace(piece, number=number) for number, piece in enumerate(every)]


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"
