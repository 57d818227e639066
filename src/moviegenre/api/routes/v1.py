"""Version 1 of the API: batch prediction, the model card, and the request limits."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from moviegenre.api.deps import MetricsDep, ModelDep, SettingsDep, run_explaining, run_limited
from moviegenre.api.errors import ApiError, invalid_item
from moviegenre.api.schemas import (
    MODEL_CARD_RESPONSE,
    LimitsResponse,
    PredictRequest,
    PredictResponse,
    error_responses,
)
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
    labels = model.labels
    predictions = [
        {
            "id": item.id,
            "probabilities": dict(zip(labels, row.tolist(), strict=True)),
            "genres": predicted,
        }
        for item, row, predicted in zip(request.items, proba, model.label_sets(proba), strict=True)
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
    about the same for one label as for all of them, so the budget counts items."""
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
    summary="Label (genre) probabilities and predicted labels for a batch of plots",
)
async def predict(request: PredictRequest, model: ModelDep, settings: SettingsDep, metrics: MetricsDep):
    """Scores up to ``max_items`` movies against the model's labels (the 24 genres by default;
    ``GET /v1/model`` lists them). ``probabilities`` maps each label, by name, to its
    probability, in the model's order. ``genres`` holds the labels whose probability reaches the
    per-label threshold stored in the model (tuned by cross-validation when it was trained),
    most probable first; a movie always gets at least one. With ``"explain": true`` each
    prediction also holds ``explanation``: the ``explain_top`` most probable labels (all of
    them, for a model with fewer), each with the words of the plot and title behind its score
    (for at most ``max_explained_items`` items, see ``GET /v1/limits``)."""
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
    responses={200: MODEL_CARD_RESPONSE, **error_responses(401, 503)},
    summary="The loaded model's model.json: its labels, what it is, how it was made, how well it did",
)
async def model_card(model: ModelDep) -> dict[str, Any]:
    """The model card (``model.json``) of the loaded model. ``labels`` lists the labels it
    predicts, in its output order, each with ``name`` and ``positives`` (how many training
    movies had it): the 24 genres by default, or a catalogue's own. They are the keys of
    ``probabilities`` in ``POST /v1/predict``; ``GET /inference`` writes each as ``p_<label>``.
    ``title``, when present, is the model's name for people (the web page's heading);
    ``thresholds`` holds each label's threshold. A client can read the label set here first."""
    return model.metadata


@router.get("/limits", response_model=LimitsResponse, responses=error_responses(401))
async def limits(settings: SettingsDep):
    """The request limits, so clients (such as the page at ``/``) can check input first."""
    return {
        "max_plot_chars": settings.max_plot_chars,
        "max_items": settings.max_items,
        "max_explained_items": settings.max_explained_items,
    }
