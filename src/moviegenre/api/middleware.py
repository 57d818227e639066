"""Pure ASGI middleware: metrics, the optional API key, and URL and body size limits.

Pure ASGI rather than ``BaseHTTPMiddleware``: these run on every request, and a plain
callable adds microseconds where ``BaseHTTPMiddleware`` adds a task and a stream per request.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response
from .metrics import Metrics

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware:
    """Counts every answer by route template, method and status, and times it.

    ``route_of(path)`` maps a path to its route template (or ``"unmatched"``); it runs before
    routing, so answers given by outer layers (401, 413, 414) are labelled by route too.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics, route_of: Callable[[str], str]):
        self.app = app
        self.metrics = metrics
        self.route_of = route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except BaseException:
            status = 500
            raise
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self.metrics.observe(self.route_of(scope["path"]), method, status, time.perf_counter() - started)


class ApiKeyMiddleware:
    """When a key is configured, every path but the public ones needs header ``x-api-key``."""

    def __init__(self, app: ASGIApp, *, api_key: str, public_paths: Iterable[str], public_prefixes: Iterable[str]):
        self.app = app
        self.api_key = api_key.encode()
        self.public_paths = frozenset(public_paths)
        self.public_prefixes = tuple(public_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_public(scope["path"]) or self._has_key(scope):
            await self.app(scope, receive, send)
            return
        response = error_response(401, "unauthorized", "missing or wrong API key: send it in header x-api-key")
        await response(scope, receive, send)

    def _is_public(self, path: str) -> bool:
        return path in self.public_paths or path.startswith(self.public_prefixes)

    def _has_key(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                return hmac.compare_digest(value, self.api_key)
        return False


class RequestLimitsMiddleware:
    """Answers 414 for an over-long URL and 413 for a body over ``max_body_bytes``.

    A declared ``content-length`` over the limit is refused before any of the body is read;
    a chunked body is counted as it arrives and refused as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_url_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_url_bytes = max_url_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Mangum gives raw_path None; the decoded path is never longer than the raw one. A
        # Lambda event's path is JSON, which can hold a lone surrogate: count it, don't fail.
        path_bytes = len(scope.get("raw_path") or scope["path"].encode("utf-8", "surrogatepass"))
        if path_bytes + len(scope.get("query_string", b"")) > self.max_url_bytes:
            response = error_response(
                414,
                "uri_too_long",
                f"the URL is longer than {self.max_url_bytes:,} bytes; send long plots with POST /v1/predict",
            )
            await response(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large()(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # Raised inside the route's body read; the app's handler answers 413.
                    raise HTTPException(413, self._too_large_message())
            return message

        await self.app(scope, counted_receive, send)

    def _too_large_message(self) -> str:
        return f"the request body is larger than {self.max_body_bytes:,} bytes; send fewer items per request"

    def _too_large(self):
        return error_response(413, "payload_too_large", self._too_large_message())


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
