"""Measure the Lambda handler the way Lambda runs it: peak memory and latency.

Run it in an environment holding only what the image holds (``pip install '.[lambda]'``), with
the model the image will carry::

    MOVIEGENRE_MODEL=models/default python deploy/aws/measure_handler.py

It imports the handler (Lambda's init phase: imports and model load), then feeds it the event
documents in ``events/`` and a 256-item batch of long plots, and prints wall and CPU times and
the process's peak resident memory. template.yaml's MemorySize and Timeout come from this.
"""

from __future__ import annotations

import json
import resource
import statistics
import time
from pathlib import Path

EVENTS = Path(__file__).resolve().parent / "events"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(call):
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def big_batch(event: dict) -> dict:
    body = json.loads(event["body"])
    plots = [item["plot"] for item in body["items"]]
    body["items"] = [{"id": str(i), "plot": (plots[i % len(plots)] + " ") * 20} for i in range(256)]
    return {**event, "body": json.dumps(body)}


def main() -> None:
    from importlib import import_module

    module, wall, cpu = timed(lambda: import_module("moviegenre.lambda_handler"))
    ready = module.app.state.model_state.model is not None
    print(f"init: {wall:.2f} s wall, {cpu:.2f} s CPU, model loaded: {ready}, peak RSS {peak_rss_mib():.0f} MiB")
    events = {path.name: json.loads(path.read_text()) for path in sorted(EVENTS.glob("*.json"))}
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
