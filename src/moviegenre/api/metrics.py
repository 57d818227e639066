"""Prometheus metrics, in a registry of the app's own (so tests can build many apps).

Each uvicorn worker process counts its own requests; with ``--workers N`` a scrape sees one
worker. Route labels are the route templates, never raw paths, so label values stay few.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: Request latency buckets, seconds: from a cheap health check to a full batch.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "moviegenre_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "moviegenre_http_request_duration_seconds",
            "Time from request to the end of the response, by route template.",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "moviegenre_predictions",
            "Plots scored, by route.",
            ("route",),
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, str, int], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}
        self._prediction_children: dict[str, Counter] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        # Children are cached: labels() takes a lock and builds a key on every call.
        key = (route, method, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(route, method, str(status))
        counter.inc()
        histogram = self._latency_children.get(route)
        if histogram is None:
            histogram = self._latency_children[route] = self.latency.labels(route)
        histogram.observe(seconds)

    def count_predictions(self, route: str, n: int) -> None:
        counter = self._prediction_children.get(route)
        if counter is None:
            counter = self._prediction_children[route] = self.predictions.labels(route)
        counter.inc(n)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
