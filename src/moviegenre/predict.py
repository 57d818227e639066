"""A loaded genre model: probabilities and label sets for plots.

Inference goes through one small interface, :class:`Scorer`, with an implementation per model
kind: :class:`~moviegenre.fast.FastLinear` (the linear kind compiled to arrays) and
:class:`PipelineScorer` (any fitted scikit-learn pipeline). Items are checked by the input
contract (:mod:`moviegenre.items`) before any scorer sees them, and the scorer's probabilities
are calibrated by the model's :class:`~moviegenre.calibration.Calibration` after it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .calibration import Calibration
from .examples import EXAMPLE_PLOTS
from .genres import GENRES, PROBABILITY_KEYS
from .items import Item, to_columns

if TYPE_CHECKING:  # pandas is imported only where a DataFrame is built: a light hot path
    import pandas as pd

logger = logging.getLogger(__name__)

#: What :meth:`GenreModel.warm` scores: the original README's second example, with a title and
#: a year, so that every column a model reads is exercised.
WARM_ITEM: dict[str, Any] = {"plot": EXAMPLE_PLOTS["E2"], "title": "Midnight Express", "year": 1978}


class Scorer(Protocol):
    """What a model kind implements to be scored: probabilities for checked items."""

    #: True when one plot scores in well under a millisecond, so that a server may score it
    #: on its event loop rather than pay for a hand-off to a worker thread.
    quick: bool

    def predict_proba(self, plots: Sequence[str], titles: Sequence[str], years: np.ndarray) -> np.ndarray:
        """(n, 24) probabilities in genre order for n valid items, given as columns."""
        ...


class PipelineScorer:
    """A fitted scikit-learn pipeline that takes the ``plot``/``title``/``year`` frame."""

    quick = False

    def __init__(self, pipeline: Any):
        self.pipeline = pipeline

    def predict_proba(self, plots: Sequence[str], titles: Sequence[str], years: np.ndarray) -> np.ndarray:
        import pandas as pd

        if not len(plots):
            return np.zeros((0, len(GENRES)))
        frame = pd.DataFrame({"plot": list(plots), "title": list(titles), "year": np.asarray(years, dtype=float)})
        return np.asarray(self.pipeline.predict_proba(frame), dtype=float)


def scorer_for(pipeline: Any) -> Scorer:
    """The fastest scorer that gives ``pipeline``'s probabilities: its compiled form (checked
    against it) where it has one, else the pipeline itself."""
    from .fast import NotCompilable, compile_pipeline, verify

    try:
        fast = compile_pipeline(pipeline)
        verify(fast, pipeline)
    except NotCompilable as exc:
        logger.debug("scoring with the pipeline itself: %s", exc)
        return PipelineScorer(pipeline)
    return fast


class GenreModel:
    """A fitted model with its ``model.json`` metadata: per-genre thresholds and calibration.

    Load one with :func:`moviegenre.load_model`; load it once per process and reuse it.

    :func:`~moviegenre.load_model` passes the :class:`Scorer` read from the model directory
    and ``load_pipeline``, so that a linear model's scikit-learn pipeline is only deserialised
    when something asks for :attr:`pipeline` (explanations, for instance). Built from an
    in-memory ``pipeline`` alone, the model finds its scorer with :func:`scorer_for`.
    ``calibration`` defaults to the one ``metadata`` holds (the identity if it holds none).
    """

    def __init__(
        self,
        pipeline: Any,
        metadata: dict[str, Any],
        directory: Path | None = None,
        *,
        scorer: Scorer | None = None,
        load_pipeline: Callable[[], Any] | None = None,
        calibration: Calibration | None = None,
    ):
        self._pipeline = pipeline
        self._load_pipeline = load_pipeline
        self._lock = threading.Lock()
        self._scorer = scorer
        self.metadata = metadata
        self.directory = directory
        self.genres: tuple[str, ...] = tuple(metadata.get("genres", GENRES))
        thresholds = metadata.get("thresholds") or {}
        self.thresholds = np.array([thresholds.get(g, 0.5) for g in self.genres], dtype=float)
        if calibration is None:
            calibration = Calibration.from_json(metadata.get("calibration"))
        self.calibration = calibration

    @property
    def pipeline(self) -> Any:
        """The fitted scikit-learn estimator (deserialised on first use if it was deferred)."""
        if self._pipeline is None and self._load_pipeline is not None:
            with self._lock:
                if self._pipeline is None:
                    self._pipeline = self._load_pipeline()
        return self._pipeline

    @property
    def scorer(self) -> Scorer:
        """What :meth:`predict_proba` scores with."""
        if self._scorer is None:
            with self._lock:
                if self._scorer is None:
                    self._scorer = scorer_for(self._pipeline)
        return self._scorer

    @property
    def id(self) -> str:
        return self.metadata["id"]

    @property
    def kind(self) -> str:
        return self.metadata["kind"]

    def predict_proba(
        self, items: Iterable[Item] | pd.DataFrame, *, max_plot_chars: int | None = None, calibrated: bool = True
    ) -> np.ndarray:
        """(n, 24) probabilities in :attr:`genres` order.

        ``items`` are plot strings, records with ``plot`` and optional ``title`` and ``year``,
        or a DataFrame with those columns. An item that breaks the input contract raises
        :class:`~moviegenre.errors.InvalidItem` naming it and the field. ``max_plot_chars``
        defaults to ``MOVIEGENRE_MAX_PLOT_CHARS``. ``calibrated=False`` gives the scorer's
        probabilities before :attr:`calibration` (to measure what calibration does).
        """
        proba = self.scorer.predict_proba(*to_columns(items, max_plot_chars))
        return self.calibration.apply(proba) if calibrated else proba

    def warm(self) -> None:
        """Score an example item the way a request is scored, so that whatever the model loads
        or builds on first use (a deferred scorer, a sentence encoder and its runtime, caches,
        first-call allocations) is done now rather than in the first request.

        The example's plot ends with a marker new to each call, so that no cache of embeddings
        in front of an encoder can answer it without running the encoder. Raises what scoring
        raises: a model that cannot score here (an encoder that cannot be loaded, a module that
        is not installed) fails now, not on its first request. A deferred pipeline is left
        deferred: scoring does not need it (explanations do, and load it on first use).
        """
        item = {**WARM_ITEM, "plot": f"{WARM_ITEM['plot']} ({uuid.uuid4().hex})"}
        self.label_sets(self.predict_proba([item]))

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

    def predict(self, items: Iterable[Item] | pd.DataFrame, *, max_plot_chars: int | None = None) -> list[list[str]]:
        return self.label_sets(self.predict_proba(items, max_plot_chars=max_plot_chars))


def as_probability_record(row: np.ndarray) -> dict[str, float]:
    """One row of probabilities as the original API's ``{"p_Action": ..., ...}`` mapping."""
    return {key: float(value) for key, value in zip(PROBABILITY_KEYS, row, strict=True)}
