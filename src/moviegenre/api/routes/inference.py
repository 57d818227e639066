"""``GET /inference``: the original API, drop-in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ...predict import GenreModel, as_probability_record
from ..deps import MetricsDep, ModelDep, SettingsDep, check_plot, run_limited
from ..schemas import InferenceResponse, error_responses

router = APIRouter(tags=["compatibility"])


def _classify(model: GenreModel, plot: str) -> dict[str, dict[str, float]]:
    return {"clasification": as_probability_record(model.predict_proba([plot])[0])}


@router.get(
    "/inference",
    response_model=InferenceResponse,
    responses=error_responses(401, 413, 414, 422, 503, 504),
    summary="Genre probabilities for one plot (the original API)",
)
async def inference(
    plot: Annotated[str, Query(description="The plot synopsis, URL-encoded.")],
    model: ModelDep,
    settings: SettingsDep,
    metrics: MetricsDep,
):
    """Same request and body as the original system: ``{"clasification": {"p_Action": ...}}``
    with the 24 ``p_<Genre>`` keys in the original's order. For many or long plots use
    ``POST /v1/predict``."""
    check_plot(plot, settings.max_plot_chars, "query parameter 'plot'")
    body = await run_limited(settings, _classify, model, plot)
    metrics.count_predictions("/inference", 1)
    return body
