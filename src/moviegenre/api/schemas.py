"""Request and response bodies of the HTTP API, with the examples shown at ``/docs``."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from moviegenre.core.errors import InvalidItem
from moviegenre.core.genres import GENRES, PROBABILITY_KEYS
from moviegenre.core.items import MAX_TITLE_CHARS, MAX_YEAR, MIN_YEAR, PLOT_PATTERN, check_year
from moviegenre.core.labels import MAX_LABELS
from moviegenre.model.explain import EXPLAIN_TERMS, EXPLAIN_TOP, explainable_kinds

_E2_PLOT = (
    "the true story of billy hayes ,  an american college student who is caught smuggling drugs "
    "out of turkey and thrown into prison ."
)
_EXAMPLE_PROBABILITIES = dict(
    zip(
        GENRES,
        (0.14, 0.05, 0.01, 0.11, 0.34, 0.26, 0.01, 0.82, 0.03, 0.02, 0.01, 0.06, 0.02, 0.01,
         0.01, 0.05, 0.00, 0.08, 0.01, 0.00, 0.01, 0.31, 0.02, 0.01),
        strict=True,
    )
)  # fmt: skip


#: The plot rule of the input contract (:mod:`moviegenre.core.items`) as JSON Schema, so that clients
#: and fuzzers generating requests from the schema know it: not empty, a letter or digit.
PLOT_SCHEMA: dict[str, Any] = {"minLength": 1, "pattern": PLOT_PATTERN}
PLOT_DESCRIPTION = (
    "The plot synopsis: text with at least one letter or digit, no lone surrogate, at most "
    "`max_plot_chars` characters (see `GET /v1/limits`)."
)


#: ``explain_top``'s bounds and description, for the query parameter and the request field: up
#: to the most labels a model can have; a model of fewer labels explains them all.
EXPLAIN_TOP_BOUNDS: dict[str, int] = {"ge": 1, "le": MAX_LABELS}
EXPLAIN_DESCRIPTION = (
    "Also explain the most probable labels (the 24 genres by default): the words of the plot and "
    "title that pushed each label's score up or down (see `explanation`). The model kinds "
    f"{', '.join(f'`{name}`' for name in explainable_kinds())} can be explained; another kind "
    "answers 422 `not_explainable`."
)
EXPLAIN_TOP_DESCRIPTION = (
    f"How many labels to explain, most probable first (1 to {MAX_LABELS:,}; a model with fewer labels "
    "explains them all); used with `explain`."
)

_EXAMPLE_EXPLANATION = [
    {
        "genre": "Western",
        "probability": 0.9620237644478219,
        "score": 3.232,
        "intercept": -2.061,
        "terms": [
            {"term": "outlaw", "field": "plot", "weight": 1.402},
            {"term": "frontier", "field": "plot", "weight": 0.912},
            {"term": "that", "field": "plot", "weight": -0.049},
        ],
        "other_terms": 2.183,
        "embedding": 0.845,
    }
]  # a static or hybrid model's (a linear model's has "embedding": null, which the published schema would drop)


class ExplanationTerm(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": _EXAMPLE_EXPLANATION[0]["terms"][0]})

    term: str = Field(
        description="A word as it appears in the request's plot or title (a substring of it), or "
        "the year as sent."
    )
    field: Literal["plot", "title", "year"] = Field(description="Where the term comes from.")
    weight: float = Field(description="What the term added to the label's score (negative: took away).")


class GenreExplanation(BaseModel):
    """Why the model gave a label (a genre, by default) its probability: its score (logit) as the
    sum of its parts, ``intercept + sum(terms[].weight) + other_terms + (embedding or 0) == score``."""

    model_config = ConfigDict(json_schema_extra={"example": _EXAMPLE_EXPLANATION[0]})

    genre: str = Field(
        description="The label explained: one of the model's labels (`GET /v1/model`), the 24 genres by "
        "default; the field keeps its name for compatibility."
    )
    probability: float = Field(description="The label's probability, as in the prediction.")
    score: float = Field(description="The label's logit, before any calibration.")
    intercept: float = Field(description="The part of the score that does not depend on the movie.")
    terms: list[ExplanationTerm] = Field(
        description=f"The strongest contributions by absolute weight, strongest first (at most {EXPLAIN_TERMS})."
    )
    other_terms: float = Field(description="The sum of every other contribution of the movie's words and year.")
    embedding: float | None = Field(
        description="The sentence-embedding part of a model that blends one in (the `static` and `hybrid` "
        "kinds), weighted as blended; `null` for a model without one (the `linear` kind)."
    )


_EXPLANATION_FIELD_DESCRIPTION = (
    "With `explain`: the top labels, most probable first, each with the terms behind its score."
)


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable reason, e.g. `plot_too_long`.")
    message: str = Field(description="What was wrong and what to do, for a person.")


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx answer."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {"error": {"code": "invalid_request", "message": "items[0].plot: Field required"}}
        }
    )

    error: ErrorDetail


class InferenceResponse(BaseModel):
    """The original API's body: one ``p_<label>`` probability per label of the model under
    ``clasification`` (spelled so, for drop-in compatibility); for the default model, the 24
    ``p_<Genre>`` keys of the original system."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "clasification": {
                    key: value for key, value in zip(PROBABILITY_KEYS, _EXAMPLE_PROBABILITIES.values(), strict=True)
                }
            }
        }
    )

    clasification: dict[str, float] = Field(
        description="`p_<label>` for each of the model's labels, in the model's order (`GET /v1/model`), "
        "each in [0, 1]: for the default model `p_Action` ... `p_Western`, in the original's order. In the "
        "key the label's `%`, `,`, `\"` and control characters are percent-encoded (`Crime, Mystery` is "
        "`p_Crime%2C Mystery`); other characters are kept."
    )
    explanation: list[GenreExplanation] = Field(
        default_factory=list,
        description=_EXPLANATION_FIELD_DESCRIPTION + " Absent without `explain=true`, so the body is the original's.",
    )


#: The integer IDs taken: those every JSON parser reads exactly (JavaScript's safe integers).
MIN_INTEGER_ID, MAX_INTEGER_ID = -(2**53 - 1), 2**53 - 1


def _integer_as_text(value: Any) -> Any:
    """An integer ID (the data files' IDs are integers) is taken as its decimal text; so is a
    number with no fraction (``7.0``), which JSON Schema counts as an integer."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        return value
    if not MIN_INTEGER_ID <= value <= MAX_INTEGER_ID:
        raise ValueError(f"an integer id must be from {MIN_INTEGER_ID} to {MAX_INTEGER_ID}; send a longer one as text")
    return str(value)


def _text_or_integer(schema: dict[str, Any]) -> None:
    text = {key: schema.pop(key) for key in ("type", "minLength", "maxLength")}
    schema["anyOf"] = [text, {"type": "integer", "minimum": MIN_INTEGER_ID, "maximum": MAX_INTEGER_ID}]


#: A year as text: digits from 1800 to 2200, a decimal part allowed, spaces or tabs around, or
#: blank (no year). The API's schema states it, so a client knows it before sending; the
#: library's contract (:func:`~moviegenre.core.items.check_year`) then reads it as at every door.
YEAR_PATTERN = r"^[ \t]*((1[89][0-9]{2}|2[01][0-9]{2})(\.[0-9]+)?|2200(\.0+)?)?[ \t]*$"


def _contract_year(value: Any) -> float | None:
    """The year as the input contract reads it at every door (:func:`~moviegenre.core.items.check_year`):
    a number, or text holding one (:data:`YEAR_PATTERN`); ``null`` or blank text for none."""
    if isinstance(value, str) and not re.search(YEAR_PATTERN, value):  # as a JSON Schema validator reads it
        raise ValueError(f"must be a year between {MIN_YEAR} and {MAX_YEAR} or empty, got {value}")  # as check_year
    try:
        year = check_year(value)
    except InvalidItem as exc:
        raise ValueError(exc.reason) from None
    return None if math.isnan(year) else year


YEAR_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": MIN_YEAR, "maximum": MAX_YEAR},
        {"type": "string", "pattern": YEAR_PATTERN},
        {"type": "null"},
    ]
}


class PredictItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, BeforeValidator(_integer_as_text)] = Field(
        min_length=1,
        max_length=256,
        description="Your identifier: text, or an integer (taken as its decimal text). Echoed back as text.",
        json_schema_extra=_text_or_integer,
    )
    plot: str = Field(description=PLOT_DESCRIPTION, json_schema_extra=PLOT_SCHEMA)
    title: str | None = Field(
        default=None, max_length=MAX_TITLE_CHARS, description="Optional movie title (the default model uses it)."
    )
    year: Annotated[float | None, BeforeValidator(_contract_year), WithJsonSchema(YEAR_SCHEMA)] = Field(
        default=None,
        description=f"Optional release year (the default model uses its decade): a number from {MIN_YEAR} "
        f"to {MAX_YEAR}, or text holding one (`\"1978\"`), as at every door; `null` or blank text for none.",
        examples=[1978],
    )


def _json_integer(value: Any) -> Any:
    """A JSON integer (``3``, or ``3.0``, which JSON Schema counts as one) for an ``int`` field,
    refusing what pydantic's lax mode would also take: ``true`` and ``"3"``."""
    if isinstance(value, bool | str):
        raise ValueError("Input should be an integer")
    return value


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {"items": [{"id": "tt0077928", "title": "Midnight Express", "year": 1978, "plot": _E2_PLOT}]}
        },
    )

    items: list[PredictItem] = Field(
        min_length=1, description="The movies to score (at most `max_items`, see `GET /v1/limits`)."
    )
    # As the schema says: JSON true or false, not 0 or "yes"; a JSON integer, not true or "3".
    explain: bool = Field(default=False, strict=True, description=EXPLAIN_DESCRIPTION)
    explain_top: Annotated[int, BeforeValidator(_json_integer)] = Field(
        default=EXPLAIN_TOP, description=EXPLAIN_TOP_DESCRIPTION, **EXPLAIN_TOP_BOUNDS
    )


class ModelRef(BaseModel):
    id: str
    kind: str


class Prediction(BaseModel):
    id: str
    probabilities: dict[str, float] = Field(
        description="Label -> probability, for each of the model's labels in the model's order "
        "(`GET /v1/model`): the 24 genres by default. Keys are the label names as they are."
    )
    genres: list[str] = Field(
        description="The predicted labels (genres, by default): those reaching their tuned per-label "
        "threshold, most probable first (at least one)."
    )
    explanation: list[GenreExplanation] = Field(
        default_factory=list, description=_EXPLANATION_FIELD_DESCRIPTION + " Absent without it."
    )


class PredictResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "model": {"id": "linear-20250101T000000Z-1a2b3c", "kind": "linear"},
                "predictions": [
                    {
                        "id": "tt0077928",
                        "probabilities": _EXAMPLE_PROBABILITIES,
                        "genres": ["Drama", "Comedy", "Thriller", "Crime"],
                    }
                ],
            }
        }
    )

    model: ModelRef
    predictions: list[Prediction]


class LimitsResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"max_plot_chars": 20000, "max_items": 256, "max_explained_items": 64}}
    )

    max_plot_chars: int = Field(description="Longest plot accepted, in characters.")
    max_items: int = Field(description="Most items in one `POST /v1/predict`.")
    max_explained_items: int = Field(
        description="Most items explained in one `POST /v1/predict` (with `explain`); explaining an item costs "
        "about 15 times what scoring it does."
    )


class HealthResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"status": "ok"}})

    status: str


class ReadyResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"status": "ready", "model": {"id": "linear-...", "kind": "linear"}}}
    )

    status: str
    model: ModelRef


#: ``GET /v1/model``'s 200 answer in the OpenAPI document: the model card, which has no fixed
#: schema here (it is :class:`moviegenre.model.card.ModelCard`'s JSON), with an abridged example.
MODEL_CARD_RESPONSE: dict[str, Any] = {
    "description": "The model card (`model.json`). `labels`: the labels the model predicts, in its output "
    "order, each with `name` and `positives` (training movies that had it; `null` when unknown): the 24 "
    "genres by default. `title`: the model's name for people, if it has one. `thresholds`: per label.",
    "content": {
        "application/json": {
            "example": {
                "format_version": 4,
                "id": "linear-20250101T000000Z-1a2b3c",
                "kind": "linear",
                "title": None,
                "labels": [{"name": "Action", "positives": 1290}, {"name": "Adventure", "positives": 910},
                           {"name": "Western", "positives": 205}],  # abridged: the 24 genres, in order
                "thresholds": {"Action": 0.31, "Adventure": 0.27, "Western": 0.35},
            }
        }
    },
}


#: ``responses=`` entries documenting the error body for the given status codes.
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse} for status in statuses}
