"""``GET /inference``: the original API, drop-in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ...errors import InvalidItem
from ...items import check_plot
from ...predict import GenreModel, as_probability_record
from ..deps import MetricsDep, ModelDep, SettingsDep, run_limited
from ..errors import invalid_item
from ..schemas import PLOT_DESCRIPTION, PLOT_SCHEMA, InferenceResponse, error_responses

router = APIRouter(tags=["compatibility"])

#: A plot up to this long, scored by a quick scorer (the compiled linear model), is scored on the
#: event loop. That takes 25 ms at worst and usually well under one, which is less than handing
#: it to a worker thread costs (about 0.25 ms, for work that holds the GIL anyway) and far less
#: than the timeout.
INLINE_MAX_CHARS = 20_000


def _classify(model: GenreModel, plot: str, max_chars: int) -> dict[str, dict[str, float]]:
    proba = model.predict_proba([plot], max_plot_chars=max_chars)
    return {"clasification": as_probability_record(proba[0])}


@router.get(
    "/inference",
    response_model=InferenceResponse,
    responses=error_responses(401, 413, 414, 422, 503, 504),
    summary="Genre probabilities for one plot (the original API)",
)
async def inference(
    plot: Annotated[str, Query(description=PLOT_DESCRIPTION + " URL-encoded.", json_schema_extra=PLOT_SCHEMA)],
    model: ModelDep,
    settings: SettingsDep,
    metrics: MetricsDep,
):
    """Same request and body as the original system: ``{"clasification": {"p_Action": ...}}``
    with the 24 ``p_<Genre>`` keys in the original's order. For many or long plots use
    ``POST /v1/predict``."""
    try:
        check_plot(plot, max_chars=settings.max_plot_chars)
    except InvalidItem as exc:
        raise invalid_item(exc, "query parameter 'plot'") from None
    if model.scorer.quick and len(plot) <= INLINE_MAX_CHARS:
        body = _classify(model, plot, settings.max_plot_chars)
    else:
        body = await run_limited(settings, _classify, model, plot, settings.max_plot_chars)
    metrics.count_predictions("/inference", 1)
    return body
