"""Scoring a big batch on both cores: the compiled linear model on forked processes.

For benchmarks (``benchmarks/run.py``) only: a server never forks its threaded process, and
batch scoring scales out with Dask instead.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence

import numpy as np

from moviegenre.fast.linear import FastLinear

_WORKER_MODEL: FastLinear | None = None


def _set_worker_model(model: FastLinear) -> None:
    global _WORKER_MODEL
    _WORKER_MODEL = model


def _score_chunk(chunk: tuple[list[str], list[str], np.ndarray]) -> np.ndarray:
    assert _WORKER_MODEL is not None
    return _WORKER_MODEL.predict_proba(*chunk)


def predict_proba_processes(
    fast: FastLinear, plots: Sequence[str], titles: Sequence[str] | None = None, years=None, *,
    workers: int = 2, chunk_rows: int = 500,
) -> np.ndarray:
    """:meth:`FastLinear.predict_proba` on ``workers`` forked processes.

    Tokenising is pure Python and holds the GIL, so threads cannot share the work; forked
    processes inherit the compiled model without copying or pickling it. For batch jobs
    (not inside a server, where forking a threaded process is unsafe). Linux/macOS only.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    n = len(plots)
    titles = [""] * n if titles is None else list(titles)
    years = np.full(n, np.nan) if years is None else np.asarray(years, dtype=np.float64)
    chunks = [
        (list(plots[start : start + chunk_rows]), titles[start : start + chunk_rows], years[start : start + chunk_rows])
        for start in range(0, n, chunk_rows)
    ]
    if workers <= 1 or len(chunks) <= 1:
        return fast.predict_proba(plots, titles, years)
    context = multiprocessing.get_context("fork")
    gc.freeze()  # the workers' garbage collector then leaves the parent's objects, and pages, alone
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_set_worker_model, initargs=(fast,)) as pool:
            return np.vstack(list(pool.map(_score_chunk, chunks)))
    finally:
        gc.unfreeze()
