"""Load and soak: concurrent clients against a real ``moviegenre serve`` on loopback.

Clients send ``GET /inference`` and ``POST /v1/predict`` (1 to 8 real plots) for a bounded time
and count; every answer must be a 200 with the right shape (zero errors), and the server's
resident memory must stay flat once warm. The latency percentiles and the memory are printed.

* the short run (normal suite): 2,000 requests or 25 s, growth < 15 MB;
* the soak (``-m soak``, opt-in): 100,000 requests or 15 minutes, growth < 50 MB.

The server is warmed first with every plot the run will send, so the model's bounded caches
(words already seen) are full before memory is measured: what grows after that is a leak.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import httpx
import psutil
import pytest
from reliability_support import assert_json_error, percentile
from tests.support.servers import BackgroundServer, serve_in_background

from moviegenre.core.data import load_movies

MB = 1024 * 1024
CONCURRENCY = 8
#: The server's limits come from the environment, as in a deployment.
SERVER_ENV = {
    "MOVIEGENRE_MAX_ITEMS": "16",
    "MOVIEGENRE_MAX_PLOT_CHARS": "5000",
    "MOVIEGENRE_MAX_BODY_BYTES": "100000",
    "MOVIEGENRE_REQUEST_TIMEOUT_S": "30",
}


@pytest.fixture(scope="module")
def server(small_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("load") / "serve.log"
    with serve_in_background(small_model_dir, env=SERVER_ENV, log=log) as running:
        yield running


def rss_bytes(server: BackgroundServer) -> int:
    """Resident memory of the server process (one worker: the process itself)."""
    return psutil.Process(server.process.pid).memory_info().rss


@pytest.fixture(scope="module")
def plots(testing_zip) -> list[str]:
    return load_movies(testing_zip, labelled=False).frame["plot"].tolist()


@dataclass
class LoadRun:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"GET /inference": [], "POST /v1/predict": []})
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values()) + len(self.errors)

    def report(self) -> str:
        lines = [f"{self.requests:,} requests in {self.seconds:.1f} s ({self.requests / self.seconds:,.0f}/s), "
                 f"{CONCURRENCY} concurrent clients, {len(self.errors)} errors"]  # fmt: skip
        for route, values in self.latencies.items():
            ordered = sorted(values)
            ms = [1000 * percentile(ordered, q) for q in (50, 90, 99)]
            lines.append(
                f"  {route:<17} n={len(ordered):>6,}  p50 {ms[0]:6.1f} ms  p90 {ms[1]:6.1f} ms  p99 {ms[2]:6.1f} ms"
            )
        return "\n".join(lines)


async def _drive(base: str, plots: list[str], *, requests: int, seconds: float, seed: int) -> LoadRun:
    """``CONCURRENCY`` clients, each on its own keep-alive connection, alternating the two
    routes at random until ``requests`` have been sent or ``seconds`` have passed."""
    run, issued = LoadRun(), 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def one_client(number: int) -> None:
            nonlocal issued
            rng = random.Random(seed * 1_000 + number)
            while issued < requests and time.perf_counter() < deadline:
                issued += 1
                started = time.perf_counter()
                try:
                    if rng.random() < 0.5:
                        route = "GET /inference"
                        response = await client.get("/inference", params={"plot": rng.choice(plots)})
                        ok = response.status_code == 200 and len(response.json()["clasification"]) == 24
                    else:
                        route = "POST /v1/predict"
                        items = [{"id": str(i), "plot": rng.choice(plots)} for i in range(rng.randint(1, 8))]
                        response = await client.post("/v1/predict", json={"items": items})
                        ok = response.status_code == 200 and len(response.json()["predictions"]) == len(items)
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    run.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                if ok:
                    run.latencies[route].append(time.perf_counter() - started)
                else:
                    run.errors.append(f"{route}: {response.status_code} {response.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(one_client(n) for n in range(CONCURRENCY)))
        run.seconds = time.perf_counter() - started
    return run


def warm_up(server, plots: list[str]) -> None:
    """Every plot once, 16 a request, so that caches hold every word the run will send."""
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        for start in range(0, len(plots), 16):
            items = [{"id": str(i), "plot": p} for i, p in enumerate(plots[start : start + 16])]
            assert client.post("/v1/predict", json={"items": items}).status_code == 200


def load_and_measure(server, plots, capsys, *, requests: int, seconds: float, max_growth_mb: float,
                     checkpoints: int = 1) -> LoadRun:  # fmt: skip
    warm_up(server, plots)
    asyncio.run(_drive(server.base_url, plots, requests=500, seconds=seconds, seed=1))  # warm the server's pools
    baseline = rss_bytes(server)
    samples, runs = [baseline], []
    for checkpoint in range(checkpoints):
        runs.append(asyncio.run(_drive(server.base_url, plots, requests=requests // checkpoints,
                                       seconds=seconds / checkpoints, seed=2 + checkpoint)))  # fmt: skip
        samples.append(rss_bytes(server))
    run = LoadRun(seconds=sum(r.seconds for r in runs), errors=[e for r in runs for e in r.errors])
    for route in run.latencies:
        run.latencies[route] = [v for r in runs for v in r.latencies[route]]
    growth = (samples[-1] - baseline) / MB
    with capsys.disabled():
        print(f"\n[load] {run.report()}")
        print(f"[load] server RSS {baseline / MB:.1f} MB after warm-up, {samples[-1] / MB:.1f} MB after "
              f"(growth {growth:+.1f} MB; samples {[round(s / MB, 1) for s in samples]})")  # fmt: skip
    assert run.errors == [], run.errors[:5]
    assert growth < max_growth_mb, f"server memory grew {growth:.1f} MB over {run.requests:,} requests"
    assert server.alive()
    return run


def test_short_load_has_no_errors_and_flat_memory(server, plots, capsys):
    run = load_and_measure(server, plots[:800], capsys, requests=2_000, seconds=25, max_growth_mb=15)
    assert run.requests >= 300, "too few requests to say anything: is the machine overloaded?"
    p99 = percentile(sorted(v for values in run.latencies.values() for v in values), 99)
    assert p99 < 5.0, f"p99 latency {p99:.2f} s"


def test_the_server_under_load_took_its_limits_from_the_environment(server):
    limits = httpx.get(server.base_url + "/v1/limits").json()
    assert limits == {"max_plot_chars": 5000, "max_items": 16, "max_explained_items": 64}
    items = [{"id": str(i), "plot": "a cowboy rides"} for i in range(17)]
    assert_json_error(httpx.post(server.base_url + "/v1/predict", json={"items": items}), 413, "too_many_items")
    assert_json_error(httpx.get(server.base_url + "/inference", params={"plot": "x" * 5001}), 413, "plot_too_long")
    big = {"items": [{"id": "1", "plot": "a cowboy rides " * 7_000}]}  # 105 KB
    assert_json_error(httpx.post(server.base_url + "/v1/predict", json=big), 413, "payload_too_large")


@pytest.mark.soak
def test_soak_100k_requests_memory_stays_flat(server, plots, capsys):
    run = load_and_measure(server, plots, capsys, requests=100_000, seconds=900, max_growth_mb=50, checkpoints=10)
    assert run.requests >= 100_000, f"only {run.requests:,} requests in 15 minutes"
