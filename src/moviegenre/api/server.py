"""Running the API on uvicorn: what ``moviegenre serve`` starts.

The server uses uvicorn's h11 protocol rather than httptools: h11 bounds how much of a request
line and headers it buffers (``h11_max_incomplete_event_size``), where httptools buffers any
length. That bound is set above the app's own URL limit (:func:`~moviegenre.api.app.max_url_bytes`),
so an over-long URL reaches the app and gets its JSON 414 (and a long plot in
``GET /inference`` gets the JSON 413); only a request head over the server bound (about
300 KB with the default limits) is answered by uvicorn itself, with a plain-text 400.
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from moviegenre.api.app import create_app, max_url_bytes
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
        "http": "h11",
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
