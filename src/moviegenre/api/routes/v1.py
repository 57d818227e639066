"""Version 1 of the API: batch prediction, the model card, and the request limits."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from moviegenre.api.deps import MetricsDep, ModelDep, SettingsDep, run_explaining, run_limited
from moviegenre.api.errors import ApiError, invalid_item
from moviegenre.api.schemas import LimitsResponse, PredictRequest, PredictResponse, error_responses
from moviegenre.core.errors import InvalidItem
from moviegenre.core.items import check_item
from moviegenre.core.settings import Settings
from moviegenre.model.explain import explain_items
from moviegenre.model.genre_model import GenreModel

router = APIRouter(prefix="/v1", tags=["v1"])


def _predict(
    model: GenreModel, items: list[dict[str, Any]], request: PredictRequest, max_chars: int,
    deadline: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    proba = model.predict_proba(items, max_plot_chars=max_chars)
    genres = model.genres
    predictions = [
        {
            "id": item.id,
            "probabilities": dict(zip(genres, row.tolist(), strict=True)),
            "genres": labels,
        }
        for item, row, labels in zip(request.items, proba, model.label_sets(proba), strict=True)
    ]
    if request.explain:
        explanations = explain_items(
            model, items, top_genres=request.explain_top, proba=proba, max_plot_chars=max_chars, deadline=deadline
        )
        for prediction, explanation in zip(predictions, explanations, strict=True):
            prediction["explanation"] = explanation
    return {"model": {"id": model.id, "kind": model.kind}, "predictions": predictions}


def _check_budget(request: PredictRequest, settings: Settings) -> None:
    """Refuse, before any work, more items than ``max_items``, and, to explain, more than
    ``max_explained_items``: explaining an item costs about 15 times what scoring it does, and
    about the same for one genre as for all 24, so the budget counts items."""
    n = len(request.items)
    if n > settings.max_items:
        raise ApiError(
            413,
            "too_many_items",
            f"{n:,} items in one request; the limit is {settings.max_items:,}. Split them into several requests",
        )
    if request.explain and n > settings.max_explained_items:
        raise ApiError(
            413,
            "too_many_explanations",
            f"{n:,} items to explain in one request; the limit is {settings.max_explained_items:,}. "
            "Split them into several requests, or ask for explanations of fewer",
        )


@router.post(
    "/predict",
    response_model=PredictResponse,
    response_model_exclude_unset=True,
    responses=error_responses(400, 401, 413, 415, 422, 503, 504),
    summary="Genre probabilities and predicted genres for a batch of plots",
)
async def predict(request: PredictRequest, model: ModelDep, settings: SettingsDep, metrics: MetricsDep):
    """Scores up to ``max_items`` movies. ``genres`` holds the genres whose probability reaches
    the per-genre threshold stored in the model (tuned by cross-validation when it was trained),
    most probable first; a movie always gets at least one. With ``"explain": true`` each
    prediction also holds ``explanation``: the ``explain_top`` most probable genres, each with
    the words of the plot and title behind its score (for at most ``max_explained_items`` items,
    see ``GET /v1/limits``)."""
    _check_budget(request, settings)
    items = [item.model_dump(include={"plot", "title", "year"}) for item in request.items]
    for index, item in enumerate(items):
        try:
            check_item(item, index, settings.max_plot_chars)
        except InvalidItem as exc:
            raise invalid_item(exc, f"items[{index}].{exc.field} (id {request.items[index].id!r})") from None
    if request.explain:
        body = await run_explaining(settings, model, _predict, model, items, request, settings.max_plot_chars)
    else:
        body = await run_limited(settings, _predict, model, items, request, settings.max_plot_chars)
    metrics.count_predictions("/v1/predict", len(request.items))
    return body


@router.get(
    "/model",
    responses=error_responses(401, 503),
    summary="The loaded model's model.json: what it is, how it was made, how well it did",
)
async def model_card(model: ModelDep) -> dict[str, Any]:
    return model.metadata


@router.get("/limits", response_model=LimitsResponse, responses=error_responses(401))
async def limits(settings: SettingsDep):
    """The request limits, so clients (such as the page at ``/``) can check input first."""
    return {
        "max_plot_chars": settings.max_plot_chars,
        "max_items": settings.max_items,
        "max_explained_items": settings.max_explained_items,
    }
