"""``GET /inference``: the original API, drop-in, with an optional explanation.

The body holds one ``p_<label>`` key per label of the model, in the model's order
(:attr:`~moviegenre.model.genre_model.GenreModel.probability_keys`): for the default model, the
original system's 24 ``p_<Genre>`` keys, so its answer is the original's."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter, Query, Request

from moviegenre.api.deps import MetricsDep, ModelDep, SettingsDep, run_explaining, run_limited
from moviegenre.api.errors import INVALID_UTF8, ApiError, invalid_item, undecodable
from moviegenre.api.schemas import (
    EXPLAIN_DESCRIPTION,
    EXPLAIN_TOP_BOUNDS,
    EXPLAIN_TOP_DESCRIPTION,
    PLOT_DESCRIPTION,
    PLOT_SCHEMA,
    InferenceResponse,
    error_responses,
)
from moviegenre.core.errors import InvalidItem
from moviegenre.core.items import check_plot
from moviegenre.model.explain import EXPLAIN_TOP, explain_items
from moviegenre.model.genre_model import GenreModel

router = APIRouter(tags=["compatibility"])

#: A plot up to this long, scored by a quick scorer (the compiled linear model), is scored on the
#: event loop. That takes 25 ms at worst and usually well under one, which is less than handing
#: it to a worker thread costs (about 0.25 ms, for work that holds the GIL anyway) and far less
#: than the timeout.
INLINE_MAX_CHARS = 20_000


def _classify(model: GenreModel, plot: str, max_chars: int) -> dict[str, dict[str, float]]:
    proba = model.predict_proba([plot], max_plot_chars=max_chars)
    return {"clasification": model.probability_record(proba[0])}


def _classify_and_explain(model: GenreModel, plot: str, max_chars: int, top: int, deadline: float) -> dict[str, Any]:
    proba = model.predict_proba([plot], max_plot_chars=max_chars)
    explanation = explain_items(
        model, [plot], top_genres=top, proba=proba, max_plot_chars=max_chars, deadline=deadline
    )[0]
    return {"clasification": model.probability_record(proba[0]), "explanation": explanation}


def query_text(query_string: bytes, name: str) -> str | None:
    """The last value of parameter ``name`` in a raw query string, decoded as UTF-8 the way
    :func:`json.loads` decodes a body (``surrogatepass``: a lone surrogate encoded in UTF-8
    reaches the input contract, which refuses it by name); ``None`` when it is absent.

    Starlette decodes query strings with ``errors="replace"``, which would score bytes that are
    not UTF-8 as U+FFFD. Raises :class:`UnicodeDecodeError` for such bytes.
    """
    wanted, found = name.encode(), None
    for pair in query_string.split(b"&"):
        key, _, value = pair.partition(b"=")
        if unquote_to_bytes(key.replace(b"+", b" ")) == wanted:
            found = value
    if found is None:
        return None
    return unquote_to_bytes(found.replace(b"+", b" ")).decode("utf-8", "surrogatepass")


@router.get(
    "/inference",
    response_model=InferenceResponse,
    response_model_exclude_unset=True,
    responses=error_responses(400, 401, 413, 414, 422, 503, 504),
    summary="Label (genre) probabilities for one plot (the original API)",
)
async def inference(
    request: Request,
    plot: Annotated[str, Query(description=PLOT_DESCRIPTION + " URL-encoded.", json_schema_extra=PLOT_SCHEMA)],
    model: ModelDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    explain: Annotated[bool, Query(description=EXPLAIN_DESCRIPTION)] = False,
    explain_top: Annotated[int, Query(description=EXPLAIN_TOP_DESCRIPTION, **EXPLAIN_TOP_BOUNDS)] = EXPLAIN_TOP,
):
    """Same request and body as the original system: ``{"clasification": {"p_Action": ...}}``,
    one ``p_<label>`` key per label of the model, in the model's order (``GET /v1/model`` lists
    them): for the default model, the 24 ``p_<Genre>`` keys in the original's order. In a key,
    the label's ``%``, ``,``, ``"`` and control characters are percent-encoded (``Crime,
    Mystery`` is ``p_Crime%2C Mystery``). With ``explain=true`` the body also holds
    ``explanation``; without it, it is exactly the original's. For many or long plots use
    ``POST /v1/predict``."""
    try:
        plot = query_text(request.scope.get("query_string", b""), "plot") or plot
    except UnicodeDecodeError as exc:
        raise ApiError(400, INVALID_UTF8, undecodable("query parameter 'plot'", exc)) from None
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
