"""``GET /inference``: the original API, drop-in, with an optional explanation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Query

from ...errors import InvalidItem
from ...explain import EXPLAIN_TOP, NotExplainable, explain_items
from ...items import check_plot
from ...predict import GenreModel, as_probability_record
from ...settings import Settings
from ..deps import MetricsDep, ModelDep, SettingsDep, run_limited
from ..errors import ApiError, invalid_item
from ..schemas import (
    EXPLAIN_DESCRIPTION,
    EXPLAIN_TOP_BOUNDS,
    EXPLAIN_TOP_DESCRIPTION,
    PLOT_DESCRIPTION,
    PLOT_SCHEMA,
    InferenceResponse,
    error_responses,
)

router = APIRouter(tags=["compatibility"])
T = TypeVar("T")

#: A plot up to this long, scored by a quick scorer (the compiled linear model), is scored on the
#: event loop. That takes 25 ms at worst and usually well under one, which is less than handing
#: it to a worker thread costs (about 0.25 ms, for work that holds the GIL anyway) and far less
#: than the timeout.
INLINE_MAX_CHARS = 20_000


def _classify(model: GenreModel, plot: str, max_chars: int) -> dict[str, dict[str, float]]:
    proba = model.predict_proba([plot], max_plot_chars=max_chars)
    return {"clasification": as_probability_record(proba[0])}


def _classify_and_explain(model: GenreModel, plot: str, max_chars: int, top: int) -> dict[str, Any]:
    proba = model.predict_proba([plot], max_plot_chars=max_chars)
    explanation = explain_items(model, [plot], top_genres=top, proba=proba, max_plot_chars=max_chars)[0]
    return {"clasification": as_probability_record(proba[0]), "explanation": explanation}


async def run_explaining(settings: Settings, model: GenreModel, work: Callable[..., T], *args) -> T:
    """``work(*args)``, which explains, as :func:`run_limited` runs it; 422 for a model kind
    that cannot be explained.

    The model's pipeline, which explanations read, is deserialised first, on first use: in a
    worker thread, so the event loop goes on serving, and outside the request's time limit,
    since it happens once per process and can take longer than one prediction may.
    """
    await anyio.to_thread.run_sync(lambda: model.pipeline)
    try:
        return await run_limited(settings, work, *args)
    except NotExplainable as exc:
        raise ApiError(422, "not_explainable", str(exc)) from None


@router.get(
    "/inference",
    response_model=InferenceResponse,
    response_model_exclude_unset=True,
    responses=error_responses(401, 413, 414, 422, 503, 504),
    summary="Genre probabilities for one plot (the original API)",
)
async def inference(
    plot: Annotated[str, Query(description=PLOT_DESCRIPTION + " URL-encoded.", json_schema_extra=PLOT_SCHEMA)],
    model: ModelDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    explain: Annotated[bool, Query(description=EXPLAIN_DESCRIPTION)] = False,
    explain_top: Annotated[int, Query(description=EXPLAIN_TOP_DESCRIPTION, **EXPLAIN_TOP_BOUNDS)] = EXPLAIN_TOP,
):
    """Same request and body as the original system: ``{"clasification": {"p_Action": ...}}``
    with the 24 ``p_<Genre>`` keys in the original's order. With ``explain=true`` the body
    also holds ``explanation``; without it, it is exactly the original's. For many or long
    plots use ``POST /v1/predict``."""
    try:
        check_plot(plot, max_chars=settings.max_plot_chars)
    except InvalidItem as exc:
        raise invalid_item(exc, "query parameter 'plot'") from None
    if explain:
        body = await run_explaining(
            settings, model, _classify_and_explain, model, plot, settings.max_plot_chars, explain_top
        )
    elif model.scorer.quick and len(plot) <= INLINE_MAX_CHARS:
        body = _classify(model, plot, settings.max_plot_chars)
    else:
        body = await run_limited(settings, _classify, model, plot, settings.max_plot_chars)
    metrics.count_predictions("/inference", 1)
    return body
