"""Pure ASGI middleware: metrics, the optional API key, and URL and body size limits.

Pure ASGI rather than ``BaseHTTPMiddleware``: these run on every request, and a plain
callable adds microseconds where ``BaseHTTPMiddleware`` adds a task and a stream per request.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moviegenre.api.errors import error_response
from moviegenre.api.metrics import Metrics

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


#: After refusing a body as too large, how much more of it the server reads and throws away,
#: and for how long, before it closes the connection: nginx's "lingering close". A client that
#: sends its whole body before it reads the answer (one without ``Expect: 100-continue``, such as
#: Python's urllib) otherwise sees a connection reset, not the 413: closing a socket with unread
#: data makes the kernel reset it. A body left longer than this is given up on.
LINGER_MAX_BYTES = 64 * 1024 * 1024
LINGER_MAX_S = 5.0
_CLOSE = (b"connection", b"close")


class RequestLimitsMiddleware:
    """Answers 414 for an over-long URL and 413 for a body over ``max_body_bytes``.

    A declared ``content-length`` over the limit is refused before any of the body is read;
    a chunked body is counted as it arrives and refused as soon as it passes the limit. An
    error answered before the whole body was read (this 413, or a 401 from the API key check
    inside it) closes the connection, after reading what is left of the body (up to
    ``linger_max_bytes`` more, for ``linger_max_s`` seconds) so that the client gets to read it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_url_bytes: int,
        linger_max_bytes: int = LINGER_MAX_BYTES,
        linger_max_s: float = LINGER_MAX_S,
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_url_bytes = max_url_bytes
        self.linger_max_bytes = linger_max_bytes
        self.linger_max_s = linger_max_s

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
        body = _RequestBody(scope, receive, self.max_body_bytes, self._too_large_message())
        send = self._lingering_if_refused(body, send)
        if body.refused:
            await self._too_large()(scope, body.receive, send)
        else:
            await self.app(scope, body.receive, send)

    def _lingering_if_refused(self, body: _RequestBody, send: Send) -> Send:
        """``send``, except that an error answered before the body was read in full asks to
        close the connection and is held open until the rest of the body is read: uvicorn's
        ``receive()`` answers ``http.disconnect`` once a response is complete, so the body can
        only be read before."""
        lingering = False

        async def send_lingering(message: Message) -> None:
            nonlocal lingering
            if message["type"] == "http.response.start":
                lingering = body.refused or (message["status"] >= 400 and not body.complete)
            if lingering and message["type"] == "http.response.start":
                # Closing is what bounds the reading: on a connection kept alive, uvicorn
                # reads and drops the rest of the body itself, however long it is.
                message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
            elif lingering and message["type"] == "http.response.body" and not message.get("more_body"):
                await send({**message, "more_body": True})
                await body.discard_rest(self.linger_max_bytes, self.linger_max_s)
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        return send_lingering

    def _too_large_message(self) -> str:
        return f"the request body is larger than {self.max_body_bytes:,} bytes; send fewer items per request"

    def _too_large(self):
        return error_response(413, "payload_too_large", self._too_large_message())


class _RequestBody:
    """The request body as the app receives it, counted against the limit as it arrives."""

    def __init__(self, scope: Scope, receive: Receive, max_bytes: int, too_large: str):
        self._receive = receive
        self.max_bytes = max_bytes
        self.too_large = too_large
        self.declared = _content_length(scope)
        # Such a client sends no body until the server asks for it (uvicorn does on the first
        # receive()), and none at all once it has the answer.
        self.waits_to_send = (_header(scope, b"expect") or b"").lower() == b"100-continue"
        self.received = 0
        self.complete = False
        self.refused = self.declared is not None and self.declared > max_bytes

    async def receive(self) -> Message:
        self.waits_to_send = False
        message = await self._receive()
        self._count(message)
        if self.received > self.max_bytes:
            self.refused = True
            # Raised inside the route's body read; the app's handler answers 413.
            raise HTTPException(413, self.too_large)
        return message

    def _count(self, message: Message) -> None:
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        else:  # http.disconnect: nothing more will come
            self.complete = True

    async def discard_rest(self, max_bytes: int, max_s: float) -> None:
        """Read and drop what is left of the body: at most ``max_bytes`` more, for at most
        ``max_s`` seconds. Nothing is read from a client that has not been asked for its body
        (``Expect: 100-continue``), nor when more than ``max_bytes`` is declared to be left."""
        if self.complete or self.waits_to_send:
            return
        if self.declared is not None and self.declared - self.received > max_bytes:
            return
        stop_at = self.received + max_bytes
        with anyio.move_on_after(max_s):
            while not self.complete and self.received <= stop_at:
                self._count(await self._receive())


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case, as ASGI servers give names)."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None
