"""AWS Lambda entry point: ``moviegenre.lambda_handler.handler``.

The same ASGI app as ``moviegenre serve``, behind Mangum, which turns API Gateway REST
(payload 1.0), HTTP API (payload 2.0) and Function URL events into HTTP requests. Mangum would
run the ASGI lifespan on every invocation, so the model is loaded here, once, when Lambda
imports this module (its init phase), and lifespan is off. The model directory comes from
``MOVIEGENRE_MODEL`` (the container image sets it); if it cannot be loaded, the function still
answers: ``/readyz`` and the prediction routes return 503 with the reason.
"""

from __future__ import annotations

from typing import Any

from mangum import Mangum

from .api.app import create_app
from .settings import Settings

# Settings() rather than the cached get_settings(): the environment is read at import, which
# is when Lambda (and a test reloading this module) has set it.
app = create_app(settings=Settings(), load_now=True)
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
