"""``GET /inference``: the original API, drop-in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ...predict import GenreModel, as_probability_record
from ..deps import MetricsDep, ModelDep, SettingsDep, check_plot, run_limited
from ..schemas import NOT_BLANK, InferenceResponse, error_responses

router = APIRouter(tags=["compatibility"])

#: A plot up to this long, scored by a compiled linear model, is scored on the event loop. That
#: takes 25 ms at worst and usually well under one, which is less than handing it to a worker
#: thread costs (about 0.25 ms, for work that holds the GIL anyway) and far less than the timeout.
INLINE_MAX_CHARS = 20_000


def _classify(model: GenreModel, plot: str) -> dict[str, dict[str, float]]:
    return {"clasification": as_probability_record(model.predict_proba([plot])[0])}


@router.get(
    "/inference",
    response_model=InferenceResponse,
    responses=error_responses(401, 413, 414, 422, 503, 504),
    summary="Genre probabilities for one plot (the original API)",
)
async def inference(
    plot: Annotated[str, Query(description="The plot synopsis, URL-encoded.", json_schema_extra=NOT_BLANK)],
    model: ModelDep,
    settings: SettingsDep,
    metrics: MetricsDep,
):
    """Same request and body as the original system: ``{"clasification": {"p_Action": ...}}``
    with the 24 ``p_<Genre>`` keys in the original's order. For many or long plots use
    ``POST /v1/predict``."""
    check_plot(plot, settings.max_plot_chars, "query parameter 'plot'")
    if model.scores_quickly and len(plot) <= INLINE_MAX_CHARS:
        body = _classify(model, plot)
    else:
        body = await run_limited(settings, _classify, model, plot)
    metrics.count_predictions("/inference", 1)
    return body
