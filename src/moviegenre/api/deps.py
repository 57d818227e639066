"""What routes depend on and share: the settings, the loaded model, and time-limited prediction
and explanation work."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Request

from moviegenre.api.errors import ApiError
from moviegenre.api.metrics import Metrics
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.settings import Settings
from moviegenre.model.artifact import load_model
from moviegenre.model.explain import DeadlinePassed, NotExplainable, explainer_of, has_explainer, warm_explainer
from moviegenre.model.genre_model import GenreModel

logger = logging.getLogger("moviegenre.api")
T = TypeVar("T")


@dataclass
class ModelState:
    """The process's model: loaded and warmed once; if either fails, the reason is kept for
    ``/readyz``.

    :attr:`model` is set only once the model has scored an example (:meth:`GenreModel.warm
    <moviegenre.model.genre_model.GenreModel.warm>`) and, for a kind that explains, explained
    it (:func:`~moviegenre.model.explain.warm_explainer`), so the first request after ``/readyz``
    says ready finds its encoder and explainer built and answers as fast as the rest, and an
    explanation cannot fail after ready: a model that cannot explain what its kind explains is
    not ready.
    """

    source: Path | None
    model: GenreModel | None = None
    error: str | None = None

    def load(self) -> None:
        if self.source is None:
            self.error = "no model directory configured (set MOVIEGENRE_MODEL)"
            return
        started = time.perf_counter()
        try:
            model = load_model(self.source)
        except Exception as exc:  # noqa: BLE001 - the server stays up and reports not-ready
            self._failed(f"the model could not be loaded: {exc}", exc)
            return
        loaded = time.perf_counter()
        logger.info("loaded model %s (%s) from %s in %.2f s", model.id, model.kind, self.source, loaded - started)
        try:
            model.warm()
        except Exception as exc:  # noqa: BLE001 - as above
            self._failed(f"the model was loaded but could not score an example: {exc}", exc)
            return
        try:
            explains = warm_explainer(model)
        except Exception as exc:  # noqa: BLE001 - as above: never ready, then 500 on explain=true
            self._failed(f"the model was loaded but could not explain an example: {exc}", exc)
            return
        logger.info(
            "warmed model %s in %.2f s: ready (%s)", model.id, time.perf_counter() - loaded,
            "explanations too" if explains else "its kind does not explain",
        )  # fmt: skip
        self.model = model

    def _failed(self, reason: str, exc: Exception) -> None:
        self.error = reason
        logger.error("%s", reason, exc_info=not isinstance(exc, MovieGenreError))

    def not_ready_reason(self) -> str:
        return self.error or "the model is still loading; retry in a moment"


# These dependencies are ``async def`` though they never await: FastAPI runs a plain ``def``
# dependency in the thread pool, and three thread hops per request cost more than a prediction.


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _model(request: Request) -> GenreModel:
    state: ModelState = request.app.state.model_state
    if state.model is None:
        raise ApiError(503, "model_not_ready", state.not_ready_reason())
    return state.model


async def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(_settings)]
ModelDep = Annotated[GenreModel, Depends(_model)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]


async def run_limited(settings: Settings, work: Callable[..., T], *args) -> T:
    """Run CPU-bound ``work(*args)`` in the thread pool, off the event loop, within
    ``settings.request_timeout_s``; past it, answer 504.

    A Python thread cannot be stopped, so on timeout the client gets its answer on time and the
    work is abandoned: work that checks a deadline (explanations, see :func:`run_explaining`)
    stops at it, with :class:`~moviegenre.model.explain.DeadlinePassed`; other work (scoring,
    milliseconds) finishes in the background and its result is dropped.
    """
    with anyio.move_on_after(settings.request_timeout_s):
        try:
            return await anyio.to_thread.run_sync(partial(work, *args), abandon_on_cancel=True)
        except DeadlinePassed:  # the work saw the deadline a moment before this scope did
            pass
    raise ApiError(
        504,
        "timeout",
        f"prediction took longer than {settings.request_timeout_s:g} s; send fewer or shorter plots per request",
    )


async def run_explaining(settings: Settings, model: GenreModel, work: Callable[..., T], *args) -> T:
    """``work(*args, deadline)``, which explains, as :func:`run_limited` runs it; 422 for a
    model kind that cannot be explained. ``deadline`` (a :func:`time.monotonic` time) is when
    the request's time is up: the explanation stops there and frees its worker thread.

    The model's explainer is built first, where the server did not build it at warm-up (a
    model passed to :func:`~moviegenre.api.app.create_app`): in a worker thread, so the event
    loop goes on serving, and outside the request's time limit, since it happens once per
    process (:func:`~moviegenre.model.explain.explainer_of`).
    """
    try:
        if has_explainer(model):
            explainer_of(model)  # built: raises at once for a model that cannot explain
        else:
            await anyio.to_thread.run_sync(explainer_of, model)
        return await run_limited(settings, work, *args, time.monotonic() + settings.request_timeout_s)
    except NotExplainable as exc:
        raise ApiError(422, "not_explainable", str(exc)) from None
