"""The web page at ``/``; its scripts and styles are served from ``/static``."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from moviegenre.api.errors import ApiError

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def index() -> HTMLResponse:
    page = resources.files("moviegenre.api").joinpath("web", "index.html")
    if not page.is_file():
        raise ApiError(404, "not_found", "this installation has no web page; see /docs for the API")
    return HTMLResponse(page.read_text(encoding="utf-8"))
