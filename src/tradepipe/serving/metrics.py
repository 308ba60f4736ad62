"""Prometheus metrics of one app: request counts and latency per route, reloads, the served version."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradepipe.serving.models import ServedModel

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServingMetrics:
    """Metrics in their own registry, so that several apps (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("tradepipe_http_requests", "HTTP requests by route and status",
                                ["endpoint", "method", "status"], registry=self.registry)
        self.latency = Histogram("tradepipe_http_request_duration_seconds", "Time to answer, by route",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.reloads = Counter("tradepipe_model_reloads", "Model reload attempts by outcome", ["outcome"],
                               registry=self.registry)
        self.version = Gauge("tradepipe_model_version", "Registered version served (0: none loaded)",
                             ["name"], registry=self.registry)
        self.model = Info("tradepipe_model", "The served model version", registry=self.registry)

    def reloaded(self, outcome: str, model: ServedModel | None) -> None:
        """Count a reload attempt and record the model served after it."""
        self.reloads.labels(outcome).inc()
        if model is None:
            return
        ref = model.ref
        self.version.labels(ref.name).set(float(ref.version))
        self.model.info({"name": ref.name, "version": ref.version, "alias": ref.alias or "",
                         "run_id": ref.run_id or ""})


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request; unknown paths are counted as ``other``."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics, routes: frozenset[str]) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            endpoint = scope["path"] if scope["path"] in self.routes else "other"
            self.metrics.requests.labels(endpoint, scope["method"], str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
