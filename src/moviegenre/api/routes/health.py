"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from moviegenre.api.deps import MetricsDep
from moviegenre.api.errors import error_response
from moviegenre.api.metrics import CONTENT_TYPE
from moviegenre.api.schemas import HealthResponse, ReadyResponse, error_responses

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthResponse, summary="The process is alive")
async def healthz():
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadyResponse,
    responses=error_responses(503),
    summary="200 once the model is loaded and warmed; 503 while loading or if loading failed",
)
async def readyz(request: Request):
    state = request.app.state.model_state
    if state.model is None:
        return error_response(503, "model_not_ready", state.not_ready_reason())
    return {"status": "ready", "model": {"id": state.model.id, "kind": state.model.kind}}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}}, **error_responses(401)},
    summary="Prometheus metrics of this process",
)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.exposition(), media_type=CONTENT_TYPE)
