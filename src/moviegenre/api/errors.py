"""One JSON error shape for every 4xx and 5xx: ``{"error": {"code": ..., "message": ...}}``.

Handlers here replace FastAPI's and Starlette's defaults, so validation errors, unknown routes,
wrong methods and unhandled exceptions all answer in that shape, and never with a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from moviegenre.core.errors import DataError, InvalidItem, MovieGenreError
from moviegenre.core.items import PLOT_TOO_LONG

logger = logging.getLogger("moviegenre.api")

#: How many validation problems one message lists before summarising.
MAX_PROBLEMS_IN_MESSAGE = 5

#: Bytes that are not UTF-8, in a request body or in the ``plot`` query parameter: the same
#: code at both doors.
INVALID_UTF8 = "invalid_utf8"

#: Every error code the API answers, and its status (``None``: the status of the framework's
#: error it stands for). README's Errors table lists each of them (``tests/api/test_error_codes.py``
#: checks both ways), and :func:`error_response` refuses any other.
ERROR_CODES: dict[str, int | None] = {
    "bad_request": 400,
    "malformed_json": 400,
    INVALID_UTF8: 400,
    "unauthorized": 401,
    "not_found": 404,
    "method_not_allowed": 405,
    PLOT_TOO_LONG: 413,
    "too_many_items": 413,
    "too_many_explanations": 413,
    "payload_too_large": 413,
    "uri_too_long": 414,
    "unsupported_media_type": 415,
    "invalid_request": 422,
    "not_explainable": 422,
    "headers_too_large": 431,
    "internal_error": 500,
    "model_not_ready": 503,
    "timeout": 504,
    "http_error": None,
}

#: The code of each status that Starlette's own errors can take here: unknown routes and
#: methods, and the body limit (:mod:`moviegenre.api.middleware`), which raises inside the route.
_CODES_BY_STATUS = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


class ApiError(Exception):
    """Raise from a route to answer ``status`` with the given error code and message."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_body(status: int, code: str, message: str) -> dict[str, dict[str, str]]:
    """The JSON of every error answer; a code that is not in :data:`ERROR_CODES` (with its
    status) is a bug."""
    if code not in ERROR_CODES or ERROR_CODES[code] not in (status, None):
        raise ValueError(f"error code {code!r} with status {status} is not in ERROR_CODES")
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, code, message), status_code=status, headers=headers)


def _where(loc: Sequence[Any]) -> str:
    """``("body", "items", 3, "plot")`` -> ``items[3].plot``; ``("query", "plot")`` -> query
    parameter 'plot'."""
    if loc and loc[0] in ("query", "header", "path", "cookie"):
        return f"{loc[0]} parameter {'.'.join(map(str, loc[1:]))!r}"
    where = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where or "request body"


def describe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    problems = []
    for error in errors[:MAX_PROBLEMS_IN_MESSAGE]:
        message = str(error.get("msg", "invalid"))
        message = message.removeprefix("Value error, ")
        problems.append(f"{_where(error.get('loc', ()))}: {message}")
    more = len(errors) - MAX_PROBLEMS_IN_MESSAGE
    if more > 0:
        problems.append(f"and {more} more problem(s)")
    return "; ".join(problems)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    malformed = [e for e in errors if e.get("type") == "json_invalid"]
    if malformed:
        reason = (malformed[0].get("ctx") or {}).get("error", "JSON decode error")
        position = malformed[0].get("loc", ("body", "?"))[-1]
        return error_response(
            400, "malformed_json", f"the request body is not valid JSON ({reason} at character {position})"
        )
    whole_body_wrong = any(tuple(e.get("loc", ())) == ("body",) for e in errors)
    if whole_body_wrong and "json" not in request.headers.get("content-type", "").lower():
        return error_response(
            415,
            "unsupported_media_type",
            "send the request body as JSON, with header Content-Type: application/json",
        )
    return error_response(422, "invalid_request", describe_validation_errors(errors))


def undecodable(where: str, exc: UnicodeDecodeError) -> str:
    """What to tell a client whose ``where`` (the request body, a query parameter) is not UTF-8."""
    return (
        f"{where} is not valid UTF-8 (byte 0x{exc.object[exc.start]:02X} at byte {exc.start:,}); "
        "send text encoded as UTF-8"
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 400:  # FastAPI could not parse the body: json.loads raised, not with a JSONDecodeError
        return _unparsable_body(exc.__cause__)
    code = _CODES_BY_STATUS.get(status, "http_error")
    if status == 404:
        message = f"no route {request.url.path!r}; see /docs for the API"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path!r}"
    else:
        message = str(exc.detail)
    return error_response(status, code, message, getattr(exc, "headers", None))


def _unparsable_body(cause: BaseException | None) -> JSONResponse:
    """400 for a JSON body that :func:`json.loads` refused other than as malformed JSON: bytes
    that are not UTF-8 (a lone surrogate encoded in UTF-8 is decoded, and refused by the input
    contract like one sent as ``\\ud800``), or nesting too deep to parse."""
    if isinstance(cause, UnicodeDecodeError):
        return error_response(400, INVALID_UTF8, undecodable("the request body", cause))
    reason = "nested too deeply" if isinstance(cause, RecursionError) else type(cause).__name__
    return error_response(400, "malformed_json", f"the request body is not valid JSON ({reason})")


def invalid_item(exc: InvalidItem, where: str) -> ApiError:
    """The answer to an item that breaks the input contract, naming it as the request does
    (``items[3].plot (id 'tt01')``): 413 for an over-long plot, as documented, else 422."""
    if exc.code == PLOT_TOO_LONG:
        return ApiError(413, PLOT_TOO_LONG, exc.at(where))
    return ApiError(422, "invalid_request", exc.at(where))


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, InvalidItem) and exc.code == PLOT_TOO_LONG:
        return error_response(413, PLOT_TOO_LONG, str(exc))
    return error_response(422, "invalid_request", str(exc))


async def _library_error(request: Request, exc: Exception) -> JSONResponse:
    # Handled here, so not re-raised to the server: log the traceback ourselves.
    logger.error("%s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "the server failed to answer this request")


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the log (Starlette re-raises it to the server), never to the client.
    logger.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return error_response(500, "internal_error", "the server failed to answer this request")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(MovieGenreError, _library_error)
    app.add_exception_handler(Exception, _unhandled)
