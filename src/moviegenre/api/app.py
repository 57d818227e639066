"""The ASGI app behind ``moviegenre serve`` and the AWS Lambda handler.

>>> from moviegenre.api.app import create_app
>>> app = create_app()            # loads MOVIEGENRE_MODEL at startup  # doctest: +SKIP

Run it with ``moviegenre serve`` or ``uvicorn moviegenre.api.app:create_app --factory``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..predict import GenreModel
from ..settings import Settings, get_settings
from .deps import ModelState
from .errors import install_error_handlers
from .metrics import Metrics
from .middleware import ApiKeyMiddleware, MetricsMiddleware, RequestLimitsMiddleware
from .routes import health, inference, v1, web

#: Reachable without the API key: health checks for load balancers, the web page (which asks
#: for the key itself) and the API's documentation, which is the same for every deployment.
PUBLIC_PATHS = ("/healthz", "/readyz", "/", "/docs", "/docs/oauth2-redirect", "/openapi.json")
PUBLIC_PREFIXES = ("/static/",)

DESCRIPTION = """\
Tag movies with genres from their plot synopsis.

* `GET /inference?plot=...` is the original system's endpoint, drop-in.
* `POST /v1/predict` scores a batch and returns predicted genre sets.
* Every error answers `{"error": {"code": ..., "message": ...}}`.
* When the server has an API key (`MOVIEGENRE_API_KEY`), send it in header `x-api-key`.
"""


def max_url_bytes(settings: Settings) -> int:
    """Longest URL the app accepts: room for a plot of ``max_plot_chars`` characters of 4-byte
    UTF-8, each byte percent-encoded (12 bytes a character), plus the rest of the URL."""
    return 12 * settings.max_plot_chars + 4096


def create_app(model: GenreModel | None = None, settings: Settings | None = None, *, load_now: bool = False) -> FastAPI:
    """Build the API around ``model``, or around the model at ``settings.model``.

    Without ``model``, the model directory is loaded once at startup (the ASGI lifespan), or
    right here with ``load_now=True`` (for AWS Lambda, where Mangum runs without lifespan). A
    model that fails to load does not stop the app: ``/readyz`` answers 503 with the reason
    and the prediction routes answer 503, so a supervisor sees "not ready", not a crash loop.
    """
    settings = settings or get_settings()
    state = ModelState(source=settings.model, model=model)
    if model is None and load_now:
        state.load()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state.model is None and state.error is None:
            await anyio.to_thread.run_sync(state.load)
        yield

    app = FastAPI(
        title="moviegenre",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.model_state = state
    app.state.metrics = metrics = Metrics()

    install_error_handlers(app)
    routers = [module.router for module in (inference, v1, health, web)]
    for router in routers:
        app.include_router(router)
    if resources.files("moviegenre").joinpath("static").is_dir():
        app.mount("/static", StaticFiles(packages=[("moviegenre", "static")]), name="static")

    route_paths = frozenset([route.path for router in routers for route in router.routes] + list(PUBLIC_PATHS))

    def route_of(path: str) -> str:
        if path in route_paths:
            return path
        return "/static" if path.startswith("/static/") else "unmatched"

    # Added innermost first: metrics see every answer, then the key, then the size limits.
    app.add_middleware(
        RequestLimitsMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_url_bytes=max_url_bytes(settings),
    )
    api_key = settings.api_key.get_secret_value() if settings.api_key else ""
    if api_key:
        app.add_middleware(
            ApiKeyMiddleware, api_key=api_key, public_paths=PUBLIC_PATHS, public_prefixes=PUBLIC_PREFIXES
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics, route_of=route_of)
    _document_deployment(app, settings, with_api_key=bool(api_key))
    return app


def _document_deployment(app: FastAPI, settings: Settings, *, with_api_key: bool) -> None:
    """Complete the OpenAPI schema with what depends on the settings: the request limits
    (so that a client or a fuzzer generating requests from the schema stays within them) and,
    with a key configured, the ``x-api-key`` header (so ``/docs`` can send it)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _document_limits(schema, settings)
            if with_api_key:
                _document_api_key(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_limits(schema: dict[str, Any], settings: Settings) -> None:
    models = schema["components"]["schemas"]
    models["PredictItem"]["properties"]["plot"]["maxLength"] = settings.max_plot_chars
    models["PredictRequest"]["properties"]["items"]["maxItems"] = settings.max_items
    for parameter in schema["paths"]["/inference"]["get"]["parameters"]:
        if parameter["name"] == "plot":
            parameter["schema"]["maxLength"] = settings.max_plot_chars


def _document_api_key(schema: dict[str, Any]) -> None:
    schema.setdefault("components", {}).setdefault("securitySchemes", {})["ApiKey"] = {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    for path, operations in schema.get("paths", {}).items():
        if path not in PUBLIC_PATHS:
            for operation in operations.values():
                operation["security"] = [{"ApiKey": []}]
