"""The first explanation on a fresh server, against the later ones (issue 18).

    python benchmarks/explain.py --model DIR            # a linear (or static) model directory
    python benchmarks/explain.py --model DIR --repeats 50 --out results.json

Starts ``moviegenre serve`` on the model (one worker) and waits until it is ready, then sends
``GET /inference?plot=...&explain=true`` once and times it, reading the server's resident memory
(RSS, with psutil) before and after; then times ``repeats`` more explanations and as many plain
predictions, and gives their medians. The goal: the first explanation answers in under 0.2 s,
with under 50 MB of RSS growth, because the linear and static kinds explain from the compiled
form they score with and never deserialise ``model.skops``. ``sklearn_mapped`` says whether
the server has loaded any of scikit-learn's compiled modules by the end (it should not have).

Prints JSON (and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the test suite's server helper: tests/support/servers.py

from tests.support.servers import serve_in_background  # noqa: E402

#: The README's example: a plot the server has not seen (its warm-up scores another).
PLOT = "a lone gunfighter rides into a frontier town to face the outlaw gang that killed his brother ."
#: Later explanations cycle through these, so no answer is a repeat of the one before.
LATER_PLOTS = [
    PLOT,
    "who meets by fate , shall be sealed by fate . theresa osborne is running along the beach",
    "the true story of billy hayes , an american college student caught smuggling drugs out of turkey",
    "astronauts discover an alien signal beneath the ice ; the crew cannot agree what to do",
    "a detective in a rainy city hunts a killer who leaves poems at every crime scene",
]


def rss_mb(process: psutil.Process) -> float:
    """Resident memory of the server and any children it has (workers), in MB."""
    processes = [process, *process.children(recursive=True)]
    return sum(p.memory_info().rss for p in processes) / 1e6


def sklearn_mapped(process: psutil.Process) -> bool:
    """Whether the server has mapped any file of scikit-learn (its compiled modules load on import)."""
    processes = [process, *process.children(recursive=True)]
    return any(f"{os.sep}sklearn{os.sep}" in m.path for p in processes for m in p.memory_maps())


def timed_get(url: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = response.read()
    elapsed = time.perf_counter() - started
    return elapsed, json.loads(body)


def measure(model: Path, repeats: int) -> dict[str, Any]:
    env = {"HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory(prefix="explain-bench-") as work, serve_in_background(
        model, env=env, timeout_s=300, log=Path(work) / "serve.log", cwd=REPO
    ) as server:
        process = psutil.Process(server.process.pid)
        card = json.loads(urllib.request.urlopen(server.base_url + "/v1/model", timeout=30).read())

        def url(plot: str, explain: bool) -> str:
            return f"{server.base_url}/inference?plot={quote(plot, safe='')}" + ("&explain=true" if explain else "")

        rss_ready = rss_mb(process)
        first_s, body = timed_get(url(PLOT, explain=True))
        rss_after_first = rss_mb(process)
        assert body["explanation"], body
        explain_s = [timed_get(url(LATER_PLOTS[i % len(LATER_PLOTS)], True))[0] for i in range(repeats)]
        plain_s = [timed_get(url(LATER_PLOTS[i % len(LATER_PLOTS)], False))[0] for i in range(repeats)]
        rss_end = rss_mb(process)
        mapped = sklearn_mapped(process)
    return {
        "model": {"id": card.get("id"), "kind": card.get("kind"), "directory": str(model)},
        "server": "moviegenre serve (one uvicorn worker), requests from this process on loopback",
        "first_explain_s": round(first_s, 4),
        "later_explain_median_s": round(statistics.median(explain_s), 4),
        "plain_inference_median_s": round(statistics.median(plain_s), 4),
        "repeats": repeats,
        "rss_mb": {"ready": round(rss_ready, 1), "after_first_explain": round(rss_after_first, 1),
                   "growth_first_explain": round(rss_after_first - rss_ready, 1), "end": round(rss_end, 1)},
        "sklearn_mapped": mapped,
        "goal": {"first_explain_s": 0.2, "rss_growth_mb": 50},
        "met": first_s < 0.2 and rss_after_first - rss_ready < 50,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="model directory to serve")
    parser.add_argument("--repeats", type=int, default=20, help="later explanations (and plain predictions) timed")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    options = parser.parse_args()
    result = measure(options.model.resolve(), options.repeats)
    text = json.dumps(result, indent=2)
    print(text)
    if options.out is not None:
        options.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
