"""A loaded genre model: probabilities and label sets for plots."""

from __future__ import annotations

import logging
import math
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DataError
from .genres import GENRES, PROBABILITY_KEYS

if TYPE_CHECKING:  # pandas is imported only where a DataFrame is built: a light hot path
    import pandas as pd

    from .fast import FastLinear

Item = str | Mapping[str, Any]
logger = logging.getLogger(__name__)


def _is_frame(items: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(items, pandas.DataFrame)


def items_to_columns(items: Iterable[Item] | pd.DataFrame) -> tuple[list[str], list[str], np.ndarray]:
    """:func:`items_to_frame` as plain ``(plots, titles, years)``, with the same checks and
    messages, but no DataFrame built for a list of items (the fast path's input)."""
    if _is_frame(items):
        frame = items_to_frame(items)
        return frame["plot"].tolist(), frame["title"].tolist(), frame["year"].to_numpy(dtype=float)
    plots, titles, years = [], [], []
    for index, item in enumerate(items):
        if isinstance(item, str):
            plots.append(item)
            titles.append("")
            years.append(math.nan)
        elif isinstance(item, Mapping):
            year = item.get("year")
            plots.append(item.get("plot"))
            titles.append(item.get("title") or "")
            years.append(math.nan if year is None else year)
        else:
            raise DataError(f"item {index}: expected a plot string or a record, got {type(item).__name__}")
    bad = [i for i, plot in enumerate(plots) if not (isinstance(plot, str) and plot.strip())]
    if bad:
        raise DataError(f"item {bad[0]}: field 'plot' is missing or blank ({len(bad)} such item(s))")
    if not all(isinstance(title, str) for title in titles):
        raise DataError("field 'title' must be text")
    return plots, titles, np.array(years, dtype=float)


def items_to_frame(items: Iterable[Item] | pd.DataFrame) -> pd.DataFrame:
    """Plots (strings) or records with ``plot`` and optional ``title``/``year`` to the frame
    every pipeline takes. A missing or blank plot is a :class:`DataError` naming the item."""
    import pandas as pd

    if not isinstance(items, pd.DataFrame):
        plots, titles, years = items_to_columns(items)
        return pd.DataFrame({"plot": plots, "title": titles, "year": years})
    frame = items
    if "plot" not in frame.columns:
        raise DataError("items have no 'plot' column")
    frame = frame.assign(
        title=frame["title"] if "title" in frame.columns else "",
        year=pd.to_numeric(frame["year"], errors="coerce") if "year" in frame.columns else np.nan,
    )[["plot", "title", "year"]]
    plots = frame["plot"]
    bad = ~plots.map(lambda p: isinstance(p, str) and bool(p.strip())).to_numpy(dtype=bool)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(f"item {first}: field 'plot' is missing or blank ({int(bad.sum())} such item(s))")
    if not frame["title"].map(lambda t: isinstance(t, str)).all():
        raise DataError("field 'title' must be text")
    frame = frame.astype({"year": float})
    return frame


class GenreModel:
    """A fitted pipeline with its ``model.json`` metadata and per-genre thresholds.

    Load one with :func:`moviegenre.load_model`; load it once per process and reuse it.

    A linear pipeline is scored through its compiled form (:attr:`fast`, see
    :mod:`moviegenre.fast`), which gives the pipeline's probabilities without its per-call
    overhead. :func:`~moviegenre.load_model` passes the compiled form read from the model
    directory and ``load_pipeline``, so the pipeline itself is only deserialised when
    something asks for :attr:`pipeline` (explanations, for instance).
    """

    def __init__(
        self,
        pipeline: Any,
        metadata: dict[str, Any],
        directory: Path | None = None,
        *,
        fast: FastLinear | None = None,
        load_pipeline: Callable[[], Any] | None = None,
    ):
        self._pipeline = pipeline
        self._load_pipeline = load_pipeline
        self._pipeline_lock = threading.Lock()
        self._fast = fast
        self._fast_known = fast is not None
        self.metadata = metadata
        self.directory = directory
        self.genres: tuple[str, ...] = tuple(metadata.get("genres", GENRES))
        thresholds = metadata.get("thresholds") or {}
        self.thresholds = np.array([thresholds.get(g, 0.5) for g in self.genres], dtype=float)

    @property
    def pipeline(self) -> Any:
        """The fitted scikit-learn estimator (deserialised on first use if it was deferred)."""
        if self._pipeline is None and self._load_pipeline is not None:
            with self._pipeline_lock:
                if self._pipeline is None:
                    self._pipeline = self._load_pipeline()
        return self._pipeline

    @pipeline.setter
    def pipeline(self, pipeline: Any) -> None:
        self._pipeline = pipeline
        self._fast, self._fast_known = None, False

    @property
    def fast(self) -> FastLinear | None:
        """The compiled linear model that :meth:`predict_proba` uses, or ``None`` when this
        kind has none (the pipeline is used)."""
        if not self._fast_known:
            self._fast = _compile(self._pipeline)
            self._fast_known = True
        return self._fast

    @property
    def scores_quickly(self) -> bool:
        """Whether :meth:`predict_proba` is the compiled linear path: a fraction of a
        millisecond for a typical plot, 25 ms at worst for 20,000 characters of unseen words."""
        return type(self).predict_proba is GenreModel.predict_proba and self.fast is not None

    @property
    def id(self) -> str:
        return self.metadata["id"]

    @property
    def kind(self) -> str:
        return self.metadata["kind"]

    def predict_proba(self, items: Iterable[Item] | pd.DataFrame) -> np.ndarray:
        """(n, 24) probabilities in :attr:`genres` order."""
        fast = self.fast
        if fast is not None:
            return fast.predict_proba(*items_to_columns(items))
        frame = items_to_frame(items)
        if frame.empty:
            return np.zeros((0, len(self.genres)))
        return np.asarray(self.pipeline.predict_proba(frame), dtype=float)

    def label_sets(self, proba: np.ndarray) -> list[list[str]]:
        """Genres whose probability reaches their tuned threshold, most probable first.

        A movie always has at least one genre, so when none reaches its threshold the single
        most probable genre is returned.
        """
        chosen = proba >= self.thresholds
        result = []
        for row, mask in zip(proba, chosen, strict=True):
            order = np.argsort(-row, kind="stable")
            picked = [self.genres[i] for i in order if mask[i]] or [self.genres[order[0]]]
            result.append(picked)
        return result

    def predict(self, items: Iterable[Item] | pd.DataFrame) -> list[list[str]]:
        return self.label_sets(self.predict_proba(items))


def _compile(pipeline: Any) -> FastLinear | None:
    """The compiled form of an in-memory ``pipeline``, checked against it; ``None`` for kinds
    that have none."""
    if pipeline is None:
        return None
    from .fast import NotCompilable, compile_pipeline, verify

    try:
        fast = compile_pipeline(pipeline)
        verify(fast, pipeline)
    except NotCompilable as exc:
        logger.debug("scoring with the pipeline itself: %s", exc)
        return None
    return fast


def as_probability_record(row: np.ndarray) -> dict[str, float]:
    """One row of probabilities as the original API's ``{"p_Action": ..., ...}`` mapping."""
    return {key: float(value) for key, value in zip(PROBABILITY_KEYS, row, strict=True)}
