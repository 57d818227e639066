"""The local engine on more than one core: pieces cut and scored by a pool of processes.

One Python process scores on one core (the GIL), so ``moviegenre score --workers N`` without
Dask starts ``N`` worker processes on this machine, each of which loads the model from its
directory once, with the same checks as any load. They run the same
:func:`~moviegenre.batch.scoring.cut_pieces` and :func:`~moviegenre.batch.scoring.score_piece`
as every engine, so the output is the same bytes as one process's; only the time changes.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from functools import cached_property
from pathlib import Path
from typing import Self

from moviegenre.batch.inputs import Piece
from moviegenre.batch.scoring import Job, PieceResult, cut_pieces, score_piece
from moviegenre.core.errors import MovieGenreError, UsageError
from moviegenre.model.artifact import load_model
from moviegenre.model.card import read_card
from moviegenre.model.genre_model import GenreModel

#: The model a pool process loaded, once (set by :func:`_load`), or why it could not.
_model: GenreModel | MovieGenreError | None = None


def _load(model_dir: str) -> None:
    global _model
    try:
        _model = load_model(Path(model_dir))
    except MovieGenreError as exc:  # raised by the first task, in the command's process: one line
        _model = exc


def _loaded() -> GenreModel:
    if isinstance(_model, MovieGenreError):
        raise _model
    if _model is None:  # pragma: no cover - the initializer always sets it
        raise MovieGenreError("a scoring process has no model")
    return _model


def _started(_: int) -> bool:
    return _loaded() is not None


def _score(job: Job, piece: Piece) -> PieceResult:
    return score_piece(_loaded(), job, piece)


class ProcessEngine:
    """Cuts and scores pieces on ``workers`` processes of this machine, each holding the model
    of ``model_dir``. Entering starts them and loads the model in each (a model that cannot be
    loaded fails there, once); leaving stops them, and cancels what has not started."""

    name = "local"

    def __init__(self, model_dir: str | Path, workers: int):
        if workers < 2:
            raise UsageError(f"a process pool needs at least 2 workers, got {workers}; use LocalEngine for one")
        self.model_dir, self.workers = Path(model_dir), workers
        self._pool: ProcessPoolExecutor | None = None

    @cached_property
    def probability_keys(self) -> tuple[str, ...]:
        """The output keys of the model of ``model_dir``, in its order, from its card (read once;
        a missing or foreign directory fails here, in one line, before anything starts)."""
        return read_card(self.model_dir).probability_keys

    def __enter__(self) -> Self:
        read_card(self.model_dir)  # a missing or foreign directory fails here, in one line
        # spawn: fresh processes, never a fork of this one's threads (a progress bar's, say).
        pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_load, initargs=(str(self.model_dir),))  # fmt: skip
        try:
            for _ in pool.map(_started, range(self.workers)):  # every process up, its model loaded
                pass
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
        self._pool = pool
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def cut(self, job: Job, pieces: Sequence[Piece]) -> list[list[Piece]]:
        futures = [self._submit(cut_pieces, job, piece) for piece in pieces]
        return [_value(future) for future in futures]

    def run(self, job: Job, pieces: Sequence[Piece]) -> Iterator[PieceResult]:
        futures = [self._submit(_score, job, piece) for piece in pieces]
        try:
            for future in as_completed(futures):
                yield _value(future)
        finally:
            for future in futures:
                future.cancel()

    def _submit(self, task, *arguments) -> Future:
        if self._pool is None:
            raise UsageError("enter the ProcessEngine (with ProcessEngine(...) as engine:) before scoring")
        return self._pool.submit(task, *arguments)


def _value(future: Future):
    try:
        return future.result()
    except BrokenProcessPool:
        raise MovieGenreError(
            "a scoring process died; it may be out of memory: use fewer --workers or a smaller MOVIEGENRE_PIECE_ROWS"
        ) from None
