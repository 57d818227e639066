"""A loaded genre model: probabilities and label sets for plots.

Inference goes through one small interface, :class:`Scorer`: a kind's compiled form
(:class:`~moviegenre.fast.linear.FastLinear`, :class:`~moviegenre.fast.static.FastStatic`) where
the kind has one, else :class:`PipelineScorer` (any fitted scikit-learn pipeline). Items are checked by the input
contract (:mod:`moviegenre.core.items`) before any scorer sees them, and the scorer's probabilities
are calibrated by the model's :class:`~moviegenre.model.calibration.Calibration` after it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from moviegenre.core.examples import EXAMPLE_PLOTS
from moviegenre.core.genres import GENRES, PROBABILITY_KEYS
from moviegenre.core.items import Item, to_columns
from moviegenre.core.labels import probability_keys
from moviegenre.model.calibration import Calibration
from moviegenre.model.card import ModelCard

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
        """(n, L) probabilities in the model's label order for n valid items, given as columns."""
        ...


class PipelineScorer:
    """A fitted scikit-learn pipeline that takes the ``plot``/``title``/``year`` frame."""

    quick = False

    def __init__(self, pipeline: Any, n_labels: int = len(GENRES)):
        self.pipeline = pipeline
        self.n_labels = n_labels

    def predict_proba(self, plots: Sequence[str], titles: Sequence[str], years: np.ndarray) -> np.ndarray:
        import pandas as pd

        if not len(plots):
            return np.zeros((0, self.n_labels))
        frame = pd.DataFrame({"plot": list(plots), "title": list(titles), "year": np.asarray(years, dtype=float)})
        return np.asarray(self.pipeline.predict_proba(frame), dtype=float)


def scorer_for(pipeline: Any, kind: str | None = None, n_labels: int = len(GENRES)) -> Scorer:
    """The fastest scorer that gives ``pipeline``'s probabilities: the compiled form of its
    ``kind`` (checked against it) where the kind has one and it compiles, else the pipeline
    itself (a pipeline of no registered kind, too)."""
    from moviegenre.kinds.registry import compiled_form, kind_names

    fast = compiled_form(kind, pipeline, strict=False) if kind in kind_names() else None
    return PipelineScorer(pipeline, n_labels) if fast is None else fast


class GenreModel:
    """A fitted model with its model card (``model.json``): its labels (the 24 genres by
    default, or a catalogue's own), per-label thresholds and calibration.

    Load one with :func:`moviegenre.load_model`; load it once per process and reuse it.

    :func:`~moviegenre.load_model` passes the :class:`Scorer` read from the model directory
    and ``load_pipeline``, so that a linear model's scikit-learn pipeline is only deserialised
    when something asks for :attr:`pipeline` (explanations read the compiled form). Built from an
    in-memory ``pipeline`` alone, the model finds its scorer with :func:`scorer_for`.

    ``card`` is the model card (:class:`~moviegenre.model.card.ModelCard`), or its dict form
    (model.json's content, checked as it is at load). ``calibration`` defaults to the one the
    card holds (the identity if it holds none).
    """

    def __init__(
        self,
        pipeline: Any,
        card: ModelCard | Mapping[str, Any],
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
        self.card = card if isinstance(card, ModelCard) else ModelCard.from_json(card, "the model's metadata")
        self._metadata = self.card.to_json()
        self.directory = directory
        #: The labels, in output order (the probabilities' columns).
        self.labels: tuple[str, ...] = self.card.label_names
        #: The same as :attr:`labels` (the 24 genres for the default models).
        self.genres = self.labels
        #: Each label's output key, ``p_<label>`` (:func:`~moviegenre.core.labels.label_key`).
        self.probability_keys: tuple[str, ...] = probability_keys(self.labels)
        self.thresholds = threshold_array(self.card.thresholds, self.labels)
        self.calibration = self.card.read_calibration() if calibration is None else calibration

    @property
    def metadata(self) -> dict[str, Any]:
        """The card as model.json holds it (what ``GET /v1/model`` answers): read it, do not change it."""
        return self._metadata

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
                    self._scorer = scorer_for(self._pipeline, self.kind, len(self.labels))
        return self._scorer

    @property
    def id(self) -> str:
        return self.card.id

    @property
    def kind(self) -> str:
        return self.card.kind

    @property
    def title(self) -> str | None:
        """The model's title (``--title`` at training), if it was given one."""
        return self.card.title

    def probability_record(self, row: np.ndarray) -> dict[str, float]:
        """One row of probabilities as ``{"p_<label>": ...}``, in label order: for the 24
        genres, the original API's ``{"p_Action": ..., ...}``."""
        return as_probability_record(row, self.probability_keys)

    def predict_proba(
        self, items: Iterable[Item] | pd.DataFrame, *, max_plot_chars: int | None = None, calibrated: bool = True
    ) -> np.ndarray:
        """(n, L) probabilities in :attr:`labels` order.

        ``items`` are plot strings, records with ``plot`` and optional ``title`` and ``year``,
        or a DataFrame with those columns. An item that breaks the input contract raises
        :class:`~moviegenre.core.errors.InvalidItem` naming it and the field. ``max_plot_chars``
        defaults to :data:`~moviegenre.core.items.DEFAULT_MAX_PLOT_CHARS`. ``calibrated=False`` gives the scorer's
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
        deferred: neither scoring nor explaining a compiled model needs it.
        """
        item = {**WARM_ITEM, "plot": f"{WARM_ITEM['plot']} ({uuid.uuid4().hex})"}
        self.label_sets(self.predict_proba([item]))

    def label_sets(self, proba: np.ndarray) -> list[list[str]]:
        """Genres whose probability reaches their tuned threshold, most probable first.

        A movie always has at least one genre, so when none reaches its threshold the single
        most probable genre is returned.
        """
        return label_sets(proba, self.thresholds, self.genres)

    def predict(self, items: Iterable[Item] | pd.DataFrame, *, max_plot_chars: int | None = None) -> list[list[str]]:
        return self.label_sets(self.predict_proba(items, max_plot_chars=max_plot_chars))


def threshold_array(thresholds: Mapping[str, float], genres: Sequence[str] = GENRES) -> np.ndarray:
    """Per genre of ``genres``, its threshold (0.5 for a genre ``thresholds`` leaves out)."""
    return np.array([thresholds.get(g, 0.5) for g in genres], dtype=float)


def label_sets(proba: np.ndarray, thresholds: np.ndarray, genres: Sequence[str] = GENRES) -> list[list[str]]:
    """Per row of ``proba``, the genres whose probability reaches their threshold, most probable
    first; the single most probable genre when none does."""
    chosen = proba >= thresholds
    result = []
    for row, mask in zip(proba, chosen, strict=True):
        order = np.argsort(-row, kind="stable")
        result.append([genres[i] for i in order if mask[i]] or [genres[order[0]]])
    return result


def as_probability_record(row: np.ndarray, keys: Sequence[str] = PROBABILITY_KEYS) -> dict[str, float]:
    """One row of probabilities as ``{key: probability}``: by default the original API's
    ``{"p_Action": ..., ...}``; :meth:`GenreModel.probability_record` gives a model's own."""
    return {key: float(value) for key, value in zip(keys, row, strict=True)}
