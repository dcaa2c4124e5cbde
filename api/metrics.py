"""Prometheus metrics: HTTP requests of this process, and job figures shared by all processes via Redis."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from restyle.jobs import JobStore

log = logging.getLogger(__name__)


class JobCollector(Collector):
    """Reads queue depth, outcomes and run durations from Redis at scrape time, so every replica agrees."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self.store.stats()
        except redis.RedisError as error:
            log.warning("job metrics unavailable: %s", error)
            return
        yield GaugeMetricFamily("restyle_queue_depth", "Jobs waiting for a worker.", value=stats.queued)
        yield GaugeMetricFamily("restyle_jobs_running", "Jobs a worker is running now.", value=stats.running)
        outcomes = CounterMetricFamily("restyle_jobs_finished", "Jobs that reached a final state.", labels=["outcome"])
        for outcome, count in stats.outcomes.items():
            outcomes.add_metric([outcome], count)
        yield outcomes
        yield CounterMetricFamily(
            "restyle_leases_reclaimed",
            "Running jobs taken back from a worker whose lease lapsed (dead, frozen or cut off).",
            value=stats.leases_reclaimed,
        )
        yield CounterMetricFamily(
            "restyle_fenced_writes",
            "Writes refused because their run had lost its lease to another run.",
            value=stats.fenced_writes,
        )
        yield HistogramMetricFamily(
            "restyle_job_duration_seconds",
            "Time from a worker starting a job to its final state.",
            buckets=[("+Inf" if math.isinf(bound) else f"{bound:g}", count) for bound, count in stats.duration_buckets],
            sum_value=stats.duration_sum,
        )


class ServiceMetrics:
    """One registry per app, so several apps in one process (tests) never collide."""

    def __init__(self, store: JobStore) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "restyle_http_requests", "HTTP requests answered.", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "restyle_http_request_duration_seconds",
            "Time to answer HTTP requests.",
            ["method", "route"],
            registry=self.registry,
        )
        self.registry.register(JobCollector(store))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware counting requests by route template (never raw paths: ids would explode cardinality)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
