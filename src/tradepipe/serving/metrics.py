"""Prometheus metrics of one app: request counts and latency per route, reloads, the served version; per paper
account, its book and risk state (:class:`AccountSnapshot`) and orders; per model, the out-of-distribution score.

The names are the contract of docker/prometheus/rules/ and docker/grafana/dashboards/ (a test checks both against
this registry). Counters are exported with ``_total`` appended (``tradepipe_http_requests_total``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradepipe.serving.models import ServedModel

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
RELOAD_OUTCOMES = ("swapped", "unchanged", "failed")  # ModelHolder's on_reload outcomes
ORDER_STATUSES = ("submitted", "filled", "rejected")


@dataclass(frozen=True)
class AccountSnapshot:
    """One paper account after a decision: what ``ServingMetrics.record_account`` exports.

    ``peak_equity`` is the high-water mark the drawdown is measured from; ``last_decision_at`` must be
    timezone-aware (a naive datetime would be read in the server's local time); ``expected_equity`` is the
    backtest engine's equity for the same policy, bars and costs, when the caller has it (else not exported).
    """

    account: str
    equity: float
    peak_equity: float
    gross_exposure: float
    cash: float
    halted: bool
    last_decision_at: datetime
    model_version: int
    expected_equity: float | None = None

    def __post_init__(self) -> None:
        if not self.account:
            raise ValueError("AccountSnapshot.account is empty: name the account")
        numbers = {"equity": self.equity, "peak_equity": self.peak_equity, "gross_exposure": self.gross_exposure,
                   "cash": self.cash, "expected_equity": 0.0 if self.expected_equity is None else self.expected_equity}
        bad = [f"{k}={v!r}" for k, v in numbers.items() if not math.isfinite(v)]
        if bad:
            raise ValueError(f"account {self.account}: non-finite {', '.join(bad)}")
        if self.peak_equity <= 0:
            raise ValueError(f"account {self.account}: peak_equity must be > 0, got {self.peak_equity}")
        if self.last_decision_at.tzinfo is None:
            raise ValueError(f"account {self.account}: last_decision_at {self.last_decision_at} has no timezone; "
                             "pass an aware datetime (e.g. datetime.now(UTC))")

    @property
    def drawdown(self) -> float:
        """Fraction below the peak, >= 0 (0 at a new high)."""
        return max(0.0, 1.0 - self.equity / self.peak_equity)


class ServingMetrics:
    """Metrics in their own registry, so that several apps (tests) never collide."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("tradepipe_http_requests", "HTTP requests by route and status",
                                ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("tradepipe_http_request_duration_seconds", "Time to answer, by route",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.reloads = Counter("tradepipe_model_reloads", "Model reload attempts by outcome", ["outcome"],
                               registry=r)
        for outcome in RELOAD_OUTCOMES:  # present at 0 from the start, so increase() sees the first failure
            self.reloads.labels(outcome)
        self.version = Gauge("tradepipe_model_version", "Registered version served (0: none loaded)",
                             ["name"], registry=r)
        self.model = Info("tradepipe_model", "The served model version", registry=r)
        self.registered = Gauge("tradepipe_model_registered_timestamp_seconds",
                                "Unix time the served version was registered (model expiry)", ["name"], registry=r)
        self.ood = Gauge("tradepipe_model_ood_score", "Out-of-distribution score of the last observation",
                         ["name"], registry=r)
        account = ["account"]
        self.equity = Gauge("tradepipe_account_equity", "Paper account equity (cash + positions at the last close)",
                            account, registry=r)
        self.expected_equity = Gauge("tradepipe_account_expected_equity", "The backtest engine's equity for the "
                                     "account's policy, bars and costs", account, registry=r)
        self.drawdown = Gauge("tradepipe_account_drawdown", "Fraction of equity below its peak (>= 0)", account,
                              registry=r)
        self.gross_exposure = Gauge("tradepipe_account_gross_exposure", "Sum of |position value| / equity", account,
                                    registry=r)
        self.cash = Gauge("tradepipe_account_cash", "Cash of the paper account", account, registry=r)
        self.halted = Gauge("tradepipe_account_halted", "1 while the kill switch is engaged, else 0", account,
                            registry=r)
        self.last_decision = Gauge("tradepipe_account_last_decision_timestamp_seconds",
                                   "Unix time of the account's last decision", account, registry=r)
        self.account_version = Gauge("tradepipe_account_model_version", "Model version the account trades", account,
                                     registry=r)
        self.orders = Counter("tradepipe_account_orders", "Orders by account and status", ["account", "status"],
                              registry=r)
        self.ood_flags = Counter("tradepipe_account_ood_flags", "Decisions the OOD guard flagged", account,
                                 registry=r)

    def reloaded(self, outcome: str, model: ServedModel | None) -> None:
        """Count a reload attempt and record the model served after it."""
        self.reloads.labels(outcome).inc()
        if model is None:
            return
        ref = model.ref
        self.version.labels(ref.name).set(float(ref.version))
        if ref.registered_at is not None:
            self.registered.labels(ref.name).set(ref.registered_at)
        self.model.info({"name": ref.name, "version": ref.version, "alias": ref.alias or "",
                         "run_id": ref.run_id or ""})

    def record_account(self, snapshot: AccountSnapshot) -> None:
        """Export an account's state after a decision (its order counters appear at 0 the first time)."""
        name = snapshot.account
        self.equity.labels(name).set(snapshot.equity)
        self.drawdown.labels(name).set(snapshot.drawdown)
        self.gross_exposure.labels(name).set(snapshot.gross_exposure)
        self.cash.labels(name).set(snapshot.cash)
        self.halted.labels(name).set(1.0 if snapshot.halted else 0.0)
        self.last_decision.labels(name).set(snapshot.last_decision_at.timestamp())
        self.account_version.labels(name).set(float(snapshot.model_version))
        if snapshot.expected_equity is None:
            self.expected_equity.remove(name)  # no expectation (any more): no stale series (a no-op if none)
        else:
            self.expected_equity.labels(name).set(snapshot.expected_equity)
        for status in ORDER_STATUSES:
            self.orders.labels(name, status)
        self.ood_flags.labels(name)

    def count_orders(self, account: str, status: str, n: int = 1) -> None:
        """Add ``n`` orders of ``status`` (submitted, filled or rejected) to ``account``'s counter."""
        if status not in ORDER_STATUSES:
            raise ValueError(f"order status {status!r} is not one of {', '.join(ORDER_STATUSES)}")
        if n < 0:
            raise ValueError(f"orders are counted up: n={n} < 0")
        self.orders.labels(account, status).inc(n)

    def record_ood(self, name: str, score: float) -> None:
        """Set model ``name``'s out-of-distribution score of the last observation."""
        if not math.isfinite(score):
            raise ValueError(f"OOD score of {name} is {score!r}; it must be finite")
        self.ood.labels(name).set(score)


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request by its route's path template (``/v1/accounts/{account}/bars``:
    one series however many accounts); a path no route matches is counted as ``other``."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app, self.metrics = app, metrics

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
            route = scope.get("route")  # set by the router on the request's scope when a route matched
            endpoint = str(getattr(route, "path", "other"))
            self.metrics.requests.labels(endpoint, scope["method"], str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
