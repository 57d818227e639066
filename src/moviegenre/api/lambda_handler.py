"""AWS Lambda entry point: ``moviegenre.api.lambda_handler.handler``.

The same ASGI app as ``moviegenre serve``, behind Mangum, which turns API Gateway REST
(payload 1.0), HTTP API (payload 2.0) and Function URL events into HTTP requests. Mangum would
run the ASGI lifespan on every invocation, so the model is loaded and warmed here (it scores an
example, which loads a hybrid's encoder), once, when Lambda imports this module (its init
phase), and lifespan is off: the first invocation answers as fast as the rest. The model
directory comes from ``MOVIEGENRE_MODEL`` (the container image sets it); if it cannot be loaded
or cannot score, the function still answers: ``/readyz`` and the prediction routes return 503
with the reason.

``python -m moviegenre.api.lambda_handler --check`` is the container image's build-time check: it
imports the handler as Lambda does and sends it an ``/inference`` event, and exits non-zero,
saying why, unless the answer is the model's probabilities, one ``p_<label>`` per label in the
model's order (the 24 genres' for the default model; see :func:`check`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from typing import Any

from mangum import Mangum

from moviegenre.api.app import create_app
from moviegenre.core.examples import EXAMPLE_PLOTS
from moviegenre.core.settings import Settings

# Lambda's runtime logs the root logger at WARNING; the load and warm-up times are worth a line
# in CloudWatch at each cold start.
logging.getLogger("moviegenre").setLevel(logging.INFO)

# Settings() rather than the cached get_settings(): the environment is read at import, which
# is when Lambda (and a test reloading this module) has set it.
_started = time.perf_counter()
app = create_app(settings=Settings(), load_now=True)
#: Seconds the import spent building the app, loading and warming the model.
init_seconds = time.perf_counter() - _started
asgi_handler = Mangum(app, lifespan="off")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Mangum, after two fixes to the event's path (see :func:`normalise_event`)."""
    return asgi_handler(normalise_event(event), context)


def normalise_event(event: dict[str, Any]) -> dict[str, Any]:
    """Paths as the app's routes expect them.

    * An HTTP API (payload 2.0) on a named stage puts the stage in the path
      (``/Prod/inference``); REST APIs and the ``$default`` stage do not. The stage is removed.
    * The original project's sample event (``httpMethod`` and ``queryStringParameters`` only,
      for ``sam local invoke``) is completed as a REST event for ``/inference``, the one route
      that project had.
    """
    context = event.get("requestContext")
    if context is None and "httpMethod" in event:
        return {
            "resource": "/inference",
            "path": "/inference",
            "headers": {},
            **event,
            "requestContext": {"stage": "Prod", "path": "/Prod/inference", "identity": {}},
        }
    if event.get("version") == "2.0" and isinstance(context, dict):
        stage = context.get("stage")
        http = context.get("http") or {}
        path = http.get("path", "")
        if stage and stage != "$default" and path.startswith(f"/{stage}/"):
            http = {**http, "path": path[len(stage) + 1 :]}
            event = {**event, "requestContext": {**context, "http": http}}
    return event


class CheckFailed(Exception):
    """The image cannot serve its model; the message says why."""


def check() -> str:
    """What the container image's build runs: fail unless this environment can serve its model.

    The model was loaded and warmed when this module was imported, as in Lambda's init phase;
    then a REST API event for ``GET /inference`` with an example plot goes through the handler,
    and the answer must be 200 with the model's probabilities: its keys
    (:attr:`~moviegenre.model.genre_model.GenreModel.probability_keys`, the 24 genres' for the
    default model) in its order, each in [0, 1]. Returns a one-line summary; raises
    :class:`CheckFailed` with the reason (a model that cannot be loaded, an extra the image
    lacks, a wrong answer).
    """
    state = app.state.model_state
    if state.model is None:
        raise CheckFailed(f"{state.source}: {state.not_ready_reason()}")
    settings: Settings = app.state.settings
    headers = {"x-api-key": settings.api_key.get_secret_value()} if settings.api_key else {}
    event = {"httpMethod": "GET", "headers": headers, "queryStringParameters": {"plot": EXAMPLE_PLOTS["E2"]}}
    started = time.perf_counter()
    response = handler(event, None)
    took = time.perf_counter() - started
    if response.get("statusCode") != 200:
        raise CheckFailed(f"GET /inference answered {response.get('statusCode')}: {response.get('body')}")
    keys = list(state.model.probability_keys)
    probabilities = json.loads(response["body"]).get("clasification") or {}
    values = [probabilities.get(key) for key in keys]
    if list(probabilities) != keys or not all(
        isinstance(v, float) and math.isfinite(v) and 0 <= v <= 1 for v in values
    ):
        raise CheckFailed(
            f"GET /inference answered 200 without the model's {len(keys)} probabilities: {response['body'][:500]}"
        )
    top = max(range(len(keys)), key=lambda i: values[i])
    return (
        f"model {state.model.id} ({state.model.kind}) from {state.source}: init {init_seconds:.2f} s, "
        f"GET /inference 200 in {took * 1000:.0f} ms (top label {state.model.labels[top]})"
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m moviegenre.api.lambda_handler --check``: 0 if the check passes, else 1."""
    parser = argparse.ArgumentParser(prog="python -m moviegenre.api.lambda_handler", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", required=True,
                        help="load, warm and query the model as Lambda would; exit 1 with the reason if it fails")
    parser.parse_args(argv)
    try:
        print(f"image check passed: {check()}")
    except CheckFailed as exc:
        print(f"image check failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
