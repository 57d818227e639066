"""A loaded genre model: probabilities and label sets for plots."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataError
from .genres import GENRES, PROBABILITY_KEYS

Item = str | Mapping[str, Any]


def items_to_frame(items: Iterable[Item] | pd.DataFrame) -> pd.DataFrame:
    """Plots (strings) or records with ``plot`` and optional ``title``/``year`` to the frame
    every pipeline takes. A missing or blank plot is a :class:`DataError` naming the item."""
    if isinstance(items, pd.DataFrame):
        frame = items
        if "plot" not in frame.columns:
            raise DataError("items have no 'plot' column")
        frame = frame.assign(
            title=frame["title"] if "title" in frame.columns else "",
            year=pd.to_numeric(frame["year"], errors="coerce") if "year" in frame.columns else np.nan,
        )[["plot", "title", "year"]]
    else:
        rows = []
        for index, item in enumerate(items):
            if isinstance(item, str):
                rows.append((item, "", np.nan))
            elif isinstance(item, Mapping):
                year = item.get("year")
                rows.append((item.get("plot"), item.get("title") or "", np.nan if year is None else year))
            else:
                raise DataError(f"item {index}: expected a plot string or a record, got {type(item).__name__}")
        frame = pd.DataFrame(rows, columns=["plot", "title", "year"])
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
    """

    def __init__(self, pipeline: Any, metadata: dict[str, Any], directory: Path | None = None):
        self.pipeline = pipeline
        self.metadata = metadata
        self.directory = directory
        self.genres: tuple[str, ...] = tuple(metadata.get("genres", GENRES))
        thresholds = metadata.get("thresholds") or {}
        self.thresholds = np.array([thresholds.get(g, 0.5) for g in self.genres], dtype=float)

    @property
    def id(self) -> str:
        return self.metadata["id"]

    @property
    def kind(self) -> str:
        return self.metadata["kind"]

    def predict_proba(self, items: Iterable[Item] | pd.DataFrame) -> np.ndarray:
        """(n, 24) probabilities in :attr:`genres` order."""
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


def as_probability_record(row: np.ndarray) -> dict[str, float]:
    """One row of probabilities as the original API's ``{"p_Action": ..., ...}`` mapping."""
    return {key: float(value) for key, value in zip(PROBABILITY_KEYS, row, strict=True)}
