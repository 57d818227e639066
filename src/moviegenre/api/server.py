"""Running the API on uvicorn: what ``moviegenre serve`` starts.

The server uses uvicorn's h11 protocol rather than httptools: h11 bounds how much of a request
line and headers it buffers (``h11_max_incomplete_event_size``), where httptools buffers any
length. That bound is set above the app's own URL limit (:func:`~moviegenre.api.app.max_url_bytes`),
so an over-long URL reaches the app and gets its JSON 414 (and a long plot in
``GET /inference`` gets the JSON 413). A request that never reaches the app (a head over the
server bound, about 300 KB with the default limits, or one that is not HTTP/1.1) is answered
by :class:`JsonErrorsH11Protocol` in the same JSON shape as every other error.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import os
from typing import Any

import h11
import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

from moviegenre.api.app import create_app, max_url_bytes
from moviegenre.api.errors import error_body
from moviegenre.api.middleware import LINGER_MAX_BYTES, LINGER_MAX_S
from moviegenre.core.settings import Settings

#: How long uvicorn's supervisor waits for a worker to answer its health ping before killing
#: and restarting it. A spawned worker first re-imports the CLI (scikit-learn, skops...): on a
#: busy machine that took longer than uvicorn's 5 s default, and workers were restarted forever.
WORKER_HEALTHCHECK_S = 60
#: Room for headers on top of the longest URL the app accepts.
HEADER_ALLOWANCE_BYTES = 64 * 1024
#: Longest path-and-query an access-log line shows (a GET /inference URL can be 240 KB).
ACCESS_LOG_PATH_CHARS = 200


class ShortPathFilter(logging.Filter):
    """Shortens the path-and-query in uvicorn's access-log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path = args[2]
            if len(path) > ACCESS_LOG_PATH_CHARS:
                short = f"{path[:ACCESS_LOG_PATH_CHARS]}...({len(path):,} chars)"
                record.args = (args[0], args[1], short, args[3], args[4])
        return True


class JsonErrorsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, whose own answer to a request it cannot read is a JSON error,
    as the app's are: 414 ``uri_too_long`` for a request line over the server bound, 431
    ``headers_too_large`` for headers over it, else 400 ``bad_request`` (not HTTP/1.1).

    uvicorn answers these before any app sees the request, in plain text, from
    ``send_400_response``: the one method replaced here. Where uvicorn then closes the
    connection at once, this one first reads and drops the rest of the request head (at most
    ``LINGER_MAX_BYTES``, for ``LINGER_MAX_S`` seconds), as the app does for a body it refuses:
    a client still sending a long URL would otherwise get a connection reset, not the answer.
    """

    _lingering: int | None = None  # bytes dropped since the answer, once it is sent
    _tail = b""

    def send_400_response(self, msg: str) -> None:
        status, code, message = self._why_unreadable()
        body = json.dumps(error_body(status, code, message)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        for event in (h11.Response(status_code=status, headers=headers), h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event) or b"")
        buffered, _ = self.conn.trailing_data
        if b"\r\n\r\n" in buffered:  # the whole head is in: nothing more to wait for
            self.transport.close()
            return
        self._lingering, self._tail = 0, buffered[-3:]
        self.loop.call_later(LINGER_MAX_S, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if self._lingering is None:
            super().data_received(data)
            return
        self._lingering += len(data)
        seen = self._tail + data
        if b"\r\n\r\n" in seen or self._lingering > LINGER_MAX_BYTES:
            self.transport.close()
        self._tail = seen[-3:]

    def _why_unreadable(self) -> tuple[int, str, str]:
        buffered, _ = self.conn.trailing_data
        limit = self.config.h11_max_incomplete_event_size
        if limit is None or len(buffered) <= limit:
            return 400, "bad_request", "the request is not valid HTTP/1.1"
        if b"\r\n" not in buffered[:limit]:
            return 414, "uri_too_long", (f"the request line is longer than {limit:,} bytes; "
                                         "send long plots with POST /v1/predict")
        return 431, "headers_too_large", f"the request line and headers are longer than {limit:,} bytes"


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Server options that let the app, not uvicorn, answer over-long requests."""
    logging_config = copy.deepcopy(LOGGING_CONFIG)
    logging_config.setdefault("filters", {})["short_paths"] = {"()": ShortPathFilter}
    logging_config["handlers"]["access"]["filters"] = ["short_paths"]
    logging_config["loggers"]["moviegenre"] = {
        "handlers": ["default"],
        "level": "INFO",
        "propagate": False,
    }
    return {
        "http": JsonErrorsH11Protocol,
        "h11_max_incomplete_event_size": max_url_bytes(settings) + HEADER_ALLOWANCE_BYTES,
        "log_config": logging_config,
        "server_header": False,
    }


def run(settings: Settings, *, host: str, port: int, workers: int = 1) -> None:
    """Serve the API for ``settings.model`` until interrupted.

    With several workers each process loads the model itself; they find it through
    ``MOVIEGENRE_MODEL``, which is set here for them.
    """
    options = uvicorn_options(settings)
    if workers > 1:
        os.environ["MOVIEGENRE_MODEL"] = str(settings.model)
        if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
            options["timeout_worker_healthcheck"] = WORKER_HEALTHCHECK_S
        uvicorn.run("moviegenre.api.app:create_app", factory=True, host=host, port=port, workers=workers, **options)
    else:
        uvicorn.run(create_app(settings=settings), host=host, port=port, **options)
