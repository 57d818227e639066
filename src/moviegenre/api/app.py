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
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from moviegenre import __version__
from moviegenre.api.deps import ModelState
from moviegenre.api.errors import install_error_handlers
from moviegenre.api.metrics import Metrics
from moviegenre.api.middleware import ApiKeyMiddleware, MetricsMiddleware, RequestLimitsMiddleware
from moviegenre.api.routes import health, inference, v1, web
from moviegenre.core.settings import Settings, get_settings
from moviegenre.model.genre_model import GenreModel

#: Where Swagger UI's scripts and styles for ``/docs`` are served from: the ``fastapi-offline``
#: package's copy, not FastAPI's default CDN, so that ``/docs`` works offline.
DOCS_ASSETS = "/docs-static"

#: Reachable without the API key: health checks for load balancers, the web page (which asks
#: for the key itself) and the API's documentation, which is the same for every deployment.
PUBLIC_PATHS = ("/healthz", "/readyz", "/", "/docs", "/docs/oauth2-redirect", "/openapi.json")
PUBLIC_PREFIXES = ("/static/", f"{DOCS_ASSETS}/")

DESCRIPTION = """\
Tag movies with genres from their plot synopsis.

* `GET /inference?plot=...` is the original system's endpoint, drop-in.
* `POST /v1/predict` scores a batch and returns predicted genre sets.
* Every error answers `{"error": {"code": ..., "message": ...}}`.
* When the server has an API key (`MOVIEGENRE_API_KEY`), send it in header `x-api-key`.
"""


class WholeStaticFiles(StaticFiles):
    """Starlette's static files, with any ``Range`` header ignored (RFC 9110 allows it): its
    answers to a range it cannot serve are plain text, not the API's JSON errors, and the files
    here are small enough to send whole."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"range"]}
        await super().__call__(scope, receive, send)


def max_url_bytes(settings: Settings) -> int:
    """Longest URL the app accepts: room for a plot of ``max_plot_chars`` characters of 4-byte
    UTF-8, each byte percent-encoded (12 bytes a character), plus the rest of the URL."""
    return 12 * settings.max_plot_chars + 4096


def create_app(model: GenreModel | None = None, settings: Settings | None = None, *, load_now: bool = False) -> FastAPI:
    """Build the API around ``model``, or around the model at ``settings.model``.

    Without ``model``, the model directory is loaded and warmed (it scores an example, see
    :meth:`~moviegenre.model.genre_model.GenreModel.warm`) once at startup, in the ASGI lifespan, or
    right here with ``load_now=True`` (for AWS Lambda, where Mangum runs without lifespan).
    The server accepts connections only once the lifespan has finished, so ``/readyz``'s
    first 200 comes after the encoder and everything else a first prediction loads; with
    several workers sharing one socket, only the workers that are ready take requests. A
    model that fails to load or to score its example does not stop the app: ``/readyz``
    answers 503 with the reason and the prediction routes answer 503, so a supervisor sees
    "not ready", not a crash loop. A ``model`` passed in is served as it is (warm it first if
    its first request must be fast).
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
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.model_state = state
    app.state.metrics = metrics = Metrics()

    install_error_handlers(app)
    routers = [module.router for module in (inference, v1, health, web)]
    for router in routers:
        app.include_router(router)
    if resources.files("moviegenre.api").joinpath("web").is_dir():
        app.mount("/static", WholeStaticFiles(packages=[("moviegenre.api", "web")]), name="static")
    _serve_docs_offline(app)

    route_paths = frozenset([route.path for router in routers for route in router.routes] + list(PUBLIC_PATHS))

    def route_of(path: str) -> str:
        if path in route_paths:
            return path
        for prefix in PUBLIC_PREFIXES:  # one label for all the files under a prefix
            if path.startswith(prefix):
                return prefix.rstrip("/")
        return "unmatched"

    # Added innermost first: metrics see every answer, then the size limits (which also let a
    # client that sends its whole body first read any early error, a 401 included), then the key.
    api_key = settings.api_key.get_secret_value() if settings.api_key else ""
    if api_key:
        app.add_middleware(
            ApiKeyMiddleware, api_key=api_key, public_paths=PUBLIC_PATHS, public_prefixes=PUBLIC_PREFIXES
        )
    app.add_middleware(
        RequestLimitsMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_url_bytes=max_url_bytes(settings),
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics, route_of=route_of)
    _document_deployment(app, settings, with_api_key=bool(api_key))
    return app


def _serve_docs_offline(app: FastAPI) -> None:
    """``/docs`` as FastAPI serves it, but with Swagger UI's files from the ``fastapi-offline``
    package at :data:`DOCS_ASSETS`: from a CDN, the page stays blank where the browser cannot
    reach the internet (FastAPI's documented "self-hosting JavaScript and CSS for docs")."""
    app.mount(DOCS_ASSETS, WholeStaticFiles(packages=[("fastapi_offline", "static")]), name="docs-static")
    openapi_url, oauth2_redirect_url = app.openapi_url, app.swagger_ui_oauth2_redirect_url
    assert openapi_url and oauth2_redirect_url

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root + oauth2_redirect_url,
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()


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
