"""Request and response bodies of the HTTP API, with the examples shown at ``/docs``."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..genres import GENRES, PROBABILITY_KEYS

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


#: A character that is not whitespace, neither to Python (``str.isspace``) nor to JSON Schema
#: (ECMAScript's ``\\s`` adds U+FEFF), spelled out so both regex engines read it alike: a plot
#: must hold one, or the API answers 422 "blank", and the schema says the same.
NOT_BLANK_PATTERN = r"[^\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
NOT_BLANK: dict[str, Any] = {"minLength": 1, "pattern": NOT_BLANK_PATTERN}
_NOT_BLANK = re.compile(NOT_BLANK_PATTERN)


def is_blank(text: str) -> bool:
    return _NOT_BLANK.search(text) is None


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
    """The original API's body: the 24 ``p_<Genre>`` probabilities under ``clasification``
    (spelled so, for drop-in compatibility)."""

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
        description="`p_Action` ... `p_Western`, in the original's order; each in [0, 1]."
    )


class PredictItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=256, description="Your identifier, echoed back.")
    plot: str = Field(
        description="The plot synopsis (not blank; length limit: `GET /v1/limits`).",
        json_schema_extra=NOT_BLANK,
    )
    title: str | None = Field(default=None, max_length=1000, description="Optional movie title.")

    @field_validator("plot")
    @classmethod
    def _not_blank(cls, plot: str) -> str:
        if is_blank(plot):
            raise ValueError("plot is blank; send the movie's plot text")
        return plot


class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"items": [{"id": "tt0077928", "title": "Midnight Express", "plot": _E2_PLOT}]}},
    )

    items: list[PredictItem] = Field(
        min_length=1, description="The movies to score (at most `max_items`, see `GET /v1/limits`)."
    )


class ModelRef(BaseModel):
    id: str
    kind: str


class Prediction(BaseModel):
    id: str
    probabilities: dict[str, float] = Field(description="Genre -> probability, in genre order.")
    genres: list[str] = Field(
        description="The predicted genres: those reaching their tuned per-genre threshold, most "
        "probable first (at least one)."
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
    model_config = ConfigDict(json_schema_extra={"example": {"max_plot_chars": 20000, "max_items": 256}})

    max_plot_chars: int = Field(description="Longest plot accepted, in characters.")
    max_items: int = Field(description="Most items in one `POST /v1/predict`.")


class HealthResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"status": "ok"}})

    status: str


class ReadyResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"status": "ready", "model": {"id": "linear-...", "kind": "linear"}}}
    )

    status: str
    model: ModelRef


#: ``responses=`` entries documenting the error body for the given status codes.
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse} for status in statuses}
