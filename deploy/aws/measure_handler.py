"""Measure the Lambda handler the way Lambda runs it: peak memory and latency.

Run it in an environment holding only what the image holds (the extras it is built with:
``pip install '.[lambda]'``, or ``'.[lambda,onnx]'`` for a hybrid), with the model the image
will carry::

    MOVIEGENRE_MODEL=models/default python deploy/aws/measure_handler.py

It imports the handler (Lambda's init phase: imports, model load and warm-up, which loads a
hybrid's encoder), times the first requests after it (plots no cache holds, so an encoder must
run), then feeds it the event documents in ``events/`` and a 256-item batch of long plots, and
prints wall and CPU times and the process's peak resident memory. template.yaml's MemorySize and
Timeout come from this.
"""

from __future__ import annotations

import json
import logging
import resource
import statistics
import time
import uuid
from pathlib import Path

EVENTS = Path(__file__).resolve().parent / "events"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(call):
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def with_new_plot(event: dict) -> dict:
    """A REST API event for ``/inference`` whose plot no cache of embeddings holds, so that a
    hybrid's encoder runs for it."""
    plot = f"{event['queryStringParameters']['plot']} {uuid.uuid4().hex}"
    return {
        **event,
        "queryStringParameters": {"plot": plot},
        "multiValueQueryStringParameters": {"plot": [plot]},
    }


def big_batch(event: dict) -> dict:
    body = json.loads(event["body"])
    plots = [item["plot"] for item in body["items"]]
    body["items"] = [{"id": str(i), "plot": (plots[i % len(plots)] + " ") * 20} for i in range(256)]
    return {**event, "body": json.dumps(body)}


def main() -> None:
    from importlib import import_module

    # the handler logs its model's load and warm-up times, as Lambda would to CloudWatch
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    module, wall, cpu = timed(lambda: import_module("moviegenre.api.lambda_handler"))
    state = module.app.state.model_state
    if state.model is None:
        raise SystemExit(f"the handler has no model: {state.not_ready_reason()}")
    print(
        f"init ({state.model.kind} model {state.model.id}): {wall:.2f} s wall, {cpu:.2f} s CPU, of which "
        f"load + warm-up {module.init_seconds:.2f} s wall; peak RSS {peak_rss_mib():.0f} MiB"
    )
    events = {path.name: json.loads(path.read_text()) for path in sorted(EVENTS.glob("*.json"))}
    fresh = [timed(lambda: module.handler(with_new_plot(events["rest-inference.json"]), None)) for _ in range(6)]
    for response, _, _ in fresh:
        assert response["statusCode"] == 200, response
    (_, wall, cpu), later = fresh[0], fresh[1:]
    print(
        f"first request after init (a plot no cache holds): {wall * 1000:.1f} ms wall, {cpu * 1000:.1f} ms CPU; "
        f"the next 5 such: median {statistics.median(w for _, w, _ in later) * 1000:.1f} ms wall, "
        f"{statistics.median(c for _, _, c in later) * 1000:.1f} ms CPU"
    )
    events["rest-predict.json x 256 long plots"] = big_batch(events["rest-predict.json"])
    for name, event in events.items():
        walls, cpus = [], []
        for _ in range(5 if "256" in name else 30):
            response, wall, cpu = timed(lambda event=event: module.handler(event, None))
            assert response["statusCode"] == 200, response
            walls.append(wall)
            cpus.append(cpu)
        print(
            f"{name:38s} wall median {statistics.median(walls) * 1000:7.1f} ms, "
            f"max {max(walls) * 1000:7.1f} ms; CPU median {statistics.median(cpus) * 1000:7.1f} ms"
        )
    print(f"peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
